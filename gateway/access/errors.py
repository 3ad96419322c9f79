"""Refusals of the governance console, each with its own stable code.

Forbidden (403): self_approval, wrong_department, own_department, not_an_approver,
not_in_directory, console_role_required, already_approved; reveals: reveal_handle_invalid,
reveal_handle_expired, reveal_not_yours, reveal_not_allowed.
Bad request (400): reveal_reason_required.
Conflict (409): grant_state (GrantStateError in grants.py), request_expired,
out_of_order, grant_consumed.
"""

from __future__ import annotations

from gateway.errors import ClientError, Forbidden


class SelfApproval(Forbidden):
    code = "self_approval"


class WrongDepartment(Forbidden):
    code = "wrong_department"


class OwnDepartment(Forbidden):
    code = "own_department"


class NotAnApprover(Forbidden):
    code = "not_an_approver"


class NotInDirectory(Forbidden):
    code = "not_in_directory"


class ConsoleRoleRequired(Forbidden):
    code = "console_role_required"


class AlreadyApproved(Forbidden):
    code = "already_approved"


class RequestExpired(ClientError):
    status = 409
    code = "request_expired"


class OutOfOrder(ClientError):
    status = 409
    code = "out_of_order"


class GrantConsumed(Forbidden):
    code = "grant_consumed"


class RevealReasonRequired(ClientError):
    code = "reveal_reason_required"


class RevealHandleInvalid(Forbidden):
    code = "reveal_handle_invalid"


class RevealHandleExpired(Forbidden):
    code = "reveal_handle_expired"


class RevealNotYours(Forbidden):
    code = "reveal_not_yours"


class RevealNotAllowed(Forbidden):
    code = "reveal_not_allowed"
