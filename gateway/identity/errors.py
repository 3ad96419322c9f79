"""Identity-specific refusals: subclasses of the shared tree with their own stable codes."""

from __future__ import annotations

from gateway.errors import ClientError, Forbidden, ServerError


class SubjectRevoked(Forbidden):
    """The subject is disabled in the directory or on the revocation list (e.g. 离职)."""

    code = "subject_revoked"


class CredentialOutOfScope(Forbidden):
    """A valid API key used outside the routes or methods it was issued for."""

    code = "credential_out_of_scope"


class IdentityProviderUnavailable(ServerError):
    """The JWKS endpoint or the CRM's introspection endpoint could not answer."""

    status = 503
    code = "identity_provider_unavailable"


class RevocationListStale(ServerError):
    """This replica has lost Redis for too long to know who is revoked: fail closed."""

    status = 503
    code = "revocation_list_stale"


class NetworkNotAllowed(Forbidden):
    code = "network_not_allowed"


class OutsideWorkingHours(Forbidden):
    code = "outside_working_hours"


class PartnerExpired(Forbidden):
    code = "partner_access_expired"


class MethodOverrideRefused(ClientError):
    """X-HTTP-Method-Override and friends: a way to smuggle a DELETE past a GET rule."""

    code = "method_override_refused"
