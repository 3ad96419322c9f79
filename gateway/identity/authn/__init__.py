"""Authenticators: each recognises one kind of credential and returns a Subject.

Every authenticator answers one of three ways: a `Subject` (the credential is
mine and valid), `None` (not my kind of credential: try the next one), or an
exception (mine, but invalid: stop and refuse). `Identity` tries them in the
order of `identity.authenticators`.
"""
