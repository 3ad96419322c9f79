# Grants: time-boxed approvals sent by the gateway (only active ones are sent,
# but expiry is checked again against the request time). A grant counts only
# when its type is configured, it is unexpired, every department the type
# needs approved it, and the caller has MFA when the type demands it.
package crm.gateway

_valid_grants contains grant if {
	some grant in input.grants
	_grant_current(grant)
	_grant_approved(grant)
	_grant_mfa_ok(grant)
}

_grant_current(grant) if time.parse_rfc3339_ns(grant.expires) > _now_ns

_grant_approved(grant) if {
	required := _config.approvals[grant.type].approvers
	every dept in required {
		dept in grant.approved_by
	}
	every dept in _extra_approvers(grant) {
		dept in grant.approved_by
	}
}

# A level grant above the standing B threshold needs more departments (A: security + IT).
_extra_approvers(grant) := _config.level_grant_approvers[grant.level] if grant.type == "level"

else := []

_grant_mfa_ok(grant) if _config.approvals[grant.type].mfa == false

_grant_mfa_ok(grant) if {
	_config.approvals[grant.type].mfa == true
	input.subject.mfa == true
}

# Approved, current grants that only lack MFA: the gateway should ask for step-up.
_grants_awaiting_mfa contains grant if {
	some grant in input.grants
	_grant_current(grant)
	_grant_approved(grant)
	not _grant_mfa_ok(grant)
}

_has_grant(type) if {
	some grant in _valid_grants
	grant.type == type
}

# The level a grant reaches, never the top one; a grant naming no known level reaches none.
_grant_level(grant) := min([_level_rank[grant.level], _top - 1])

_break_glass_grants contains grant if {
	some grant in _valid_grants
	grant.type == "break_glass"
}

# Break-glass needs the justification header on this very request, and is for
# staff only: external partners never unmask through an emergency grant.
_break_glass_applied if {
	count(_break_glass_grants) > 0
	not input.subject.partner
	input.request.justification == true
	input.request.operation in _config.break_glass.operations
}

_break_glass_index := max({_grant_level(grant) | some grant in _break_glass_grants})

_level_grant_index := max({_grant_level(grant) |
	some grant in _valid_grants
	grant.type == "level"
})
