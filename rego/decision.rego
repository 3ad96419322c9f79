# METADATA
# title: CRM gateway access policy
# description: |
#   Decides, once per request, the action table the gateway applies to every
#   customer field of the CRM response: which categories and levels are shown
#   in clear, masked, dropped or blocked, which records are left out, and the
#   obligations (audit level, step-up, bulk limits, cache TTL). Everything the
#   security team tunes lives in data.crm.config (rego/data.json); the policy
#   reads the time from the input, so a decision is a pure function of its
#   input and can be cached.
# scope: package
# schemas:
#   - input: schema.input
#   - data.crm.config: schema.config
package crm.gateway

_config := data.crm.config

default _revision := "unversioned"

_revision := _config.revision

# METADATA
# title: decision
# description: |
#   The action table for one request. Shape: rego/schema/output.json; parsed
#   by gateway.core.model.Decision.from_json. A denied request gets allow
#   false and "block" for every category and level.
# entrypoint: true
decision := {
	"allow": allow,
	"reason": reason,
	"revision": _revision,
	"fields": fields,
	"levels": levels,
	"records": records,
	"obligations": obligations,
	"write": write,
	"report_only": _report_only,
	"explain": explain,
}

# allow is built from positive facts only; each fact has a deny reason below.
default allow := false

allow if {
	_not_revoked
	_not_disabled
	_taxonomy_valid
	_clearance_known
	_operation_permitted
	_network_permitted
	_partner_current
}

_not_revoked if input.subject.revoked == false

_not_disabled if input.subject.disabled == false

_taxonomy_valid if count(input.taxonomy.levels) > 1

_clearance_known if input.subject.clearance in input.taxonomy.levels

_network_permitted if input.subject.network_allowed == true

_partner_current if input.subject.partner == false

_partner_current if {
	input.subject.partner == true
	is_string(input.subject.partner_expires)
	time.parse_rfc3339_ns(input.subject.partner_expires) > _now_ns
}

_deny contains "subject_revoked" if not _not_revoked

_deny contains "subject_disabled" if not _not_disabled

_deny contains "taxonomy_invalid: fewer than two levels" if not _taxonomy_valid

_deny contains sprintf("clearance_unknown: %v", [input.subject.clearance]) if not _clearance_known

_deny contains sprintf("operation_not_permitted: no role permits %v", [input.request.operation]) if {
	not _operation_permitted
}

_deny contains "network_not_allowed" if not _network_permitted

_deny contains "partner_access_expired" if not _partner_current

default reason := "denied"

reason := "allowed" if allow

else := concat("; ", sort(_deny)) if count(_deny) > 0

default _report_only := false

_report_only if {
	_not_revoked
	_not_disabled
	_report_only_requested
}

_report_only_requested if input.request.report_only == true

_report_only_requested if _config.report_only == true

# The request time, in ns; everything that compares times uses it.
_now_ns := time.parse_rfc3339_ns(input.request.time.rfc3339)
