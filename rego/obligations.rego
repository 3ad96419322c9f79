# Obligations: what the gateway must do besides applying the table (audit
# detail, step-up, bulk limits, purpose and justification prompts, cache TTL,
# protected lookups).
package crm.gateway

obligations := {
	"audit_level": _audit_level,
	"step_up": _step_up,
	"acr_values": _acr_values,
	"max_clear_records": _max_clear_records,
	"bulk_action": _bulk_action,
	"cache_ttl": _cache_ttl,
	"purpose_required": _purpose_required,
	"purposes": _declarable_purposes,
	"justification_required": _justification_required,
	"lookup": _lookup,
	"reveal": _reveal,
}

default _audit_level := "basic"

_audit_level := "critical" if _break_glass_applied

_audit_level := "detailed" if {
	not _break_glass_applied
	_audit_detailed
}

# Denials, clear high levels, reveals and records of sensitive grades are audited in detail.
_audit_detailed if not allow

_audit_detailed if input.request.operation == "reveal"

_audit_detailed if _limit >= _threshold(_config.audit.detailed_from)

_audit_detailed if {
	some grade in _config.audit.detailed_grades
	_grade_visible(grade)
}

default _step_up := false

_step_up if {
	allow
	_step_up_needed
}

_step_up if {
	allow
	count(_grants_awaiting_mfa) > 0
}

default _acr_values := null

_acr_values := _config.step_up_acr_values if _step_up

# Per-level limits on records shown in clear; a bulk_export grant lifts them up
# to its level (all levels below the top when it names none).
_max_clear_records[level] := n if {
	some level, n in _config.bulk.max_clear_records
	not _bulk_lifted(level)
}

_bulk_lifted(level) if {
	some grant in _valid_grants
	grant.type == "bulk_export"
	_bulk_grant_reaches(grant, level)
}

_bulk_grant_reaches(grant, level) if _level_rank[level] <= _grant_level(grant)

_bulk_grant_reaches(grant, level) if {
	object.get(grant, "level", null) == null
	_level_rank[level] < _top
}

# An export past a remaining limit is refused; a view past it is masked.
default _bulk_action := "mask"

_bulk_action := "block" if {
	input.request.operation == "export"
	count(_max_clear_records) > 0
}

# Shorter caching when a grant or the partner's access is about to expire.
default _cache_ttl := 0

_cache_ttl := _config.cache.short_ttl if _expiring_soon

else := _config.cache.ttl

_expiring_soon if {
	some grant in _valid_grants
	_ends_soon(grant.expires)
}

_expiring_soon if {
	input.subject.partner == true
	_ends_soon(input.subject.partner_expires)
}

_ends_soon(stamp) if {
	time.parse_rfc3339_ns(stamp) - _now_ns <= _config.cache.expiring_within_seconds * 1000000000
}

# The caller would see purpose-bound levels in clear if a purpose were declared.
default _purpose_required := false

_purpose_required if {
	allow
	not _purpose_ok
	_limit_excluding("purpose") >= _threshold(_config.purpose_required_from)
}

# The purposes the caller's roles may declare (the `purposes` table): the gateway
# refuses any other declared purpose rather than quietly ignore it. Null when the
# policy keeps no such table (then any declared purpose is passed on as is).
default _declarable_purposes := null

_declarable_purposes := sort(_role_purposes) if is_object(_config.purposes)

_role_purposes contains purpose if {
	some role in input.subject.roles
	some purpose in object.get(_config.purposes, role, [])
}

default _justification_required := false

_justification_required if {
	allow
	count(_break_glass_grants) > 0
}

# Lookups: the categories a caller may filter or search by although they are
# above the clear limit (customer service finding a customer by the number the
# customer gave), exact values only, at most `limit` requests per
# `period_seconds` per subject. Anything else above the clear limit is refused
# by the gateway (403 protected_field_filter). Several roles: the union of the
# categories under the strictest limit. Never for the top level, never in export.
default _lookup := {"categories": [], "limit": 0, "period_seconds": 3600}

_lookup := {
	"categories": sort(_lookup_categories),
	"limit": min({rule.limit | some rule in _lookup_rules}),
	"period_seconds": max({rule.period_seconds | some rule in _lookup_rules}),
} if {
	allow
	input.request.operation == "view"
	count(_lookup_categories) > 0
}

_lookup_rules contains rule if {
	some role in input.subject.roles
	rule := object.get(_config, ["lookup", role], null)
	is_object(rule)
	_lookup_purpose_ok(rule)
}

# No purposes listed: the role alone decides.
_lookup_purpose_ok(rule) if count(object.get(rule, "purposes", [])) == 0

_lookup_purpose_ok(rule) if input.request.purpose in rule.purposes

_lookup_categories contains category if {
	some rule in _lookup_rules
	some category in rule.categories
	_category_indexes[category] < _top
}
