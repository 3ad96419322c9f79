# Limits: how far up the levels this caller may see in clear for this request.
# The clear limit is the lowest of several caps (clearance raised by level
# grants, the roles' scope for the operation, purpose, time and place, the top
# level); break-glass may lift it past those caps, and missing MFA lowers it.
package crm.gateway

_levels := input.taxonomy.levels

_top := count(_levels) - 1

_level_rank[level] := i if some i, level in _levels

default _name(_) := "none"

_name(i) := _levels[i] if i >= 0

# Thresholds naming an unknown level apply from the lowest level (fail closed).
default _threshold(_) := 0

_threshold(level) := _level_rank[level]

_clearance_index := max({_level_rank[input.subject.clearance], _level_grant_index}) if {
	_level_grant_index
} else := _level_rank[input.subject.clearance]

_operation_levels contains rank if {
	some role in input.subject.roles
	rank := _level_rank[_config.roles[role][_scope_operation]]
}

# A reveal is a view of one value: the roles' view scope bounds it (the reveal
# obligation, reveal.rego, says which masked categories may be unmasked).
default _scope_operation := "view"

_scope_operation := input.request.operation if input.request.operation != "reveal"

_operation_permitted if count(_operation_levels) > 0

_purpose_ok if {
	some role in input.subject.roles
	input.request.purpose in _config.purposes[role]
}

_working_hours if {
	not input.request.time.date in _config.time_place.holidays
	hours := _config.time_place.hours[format_int(input.request.time.weekday, 10)]
	input.request.time.hour >= hours.start
	input.request.time.hour < hours.end
}

_zone_allowed if input.subject.network_zone in _config.time_place.zones

_caps contains {
	"id": "clearance",
	"limit": _clearance_index,
	"why": sprintf("clearance %s", [_name(_clearance_index)]),
}

_caps contains {"id": "operation", "limit": limit, "why": why} if {
	limit := max(_operation_levels)
	why := sprintf("roles permit %s up to %s", [input.request.operation, _name(limit)])
}

_caps contains {"id": "top", "limit": _top - 1, "why": "top level is never released"}

_caps contains {"id": "purpose", "limit": limit, "why": "no declared purpose allowed for the caller's roles"} if {
	not _purpose_ok
	limit := _threshold(_config.purpose_required_from) - 1
}

_caps contains {"id": "time", "limit": limit, "why": "outside working hours"} if {
	not _working_hours
	not _has_grant("oncall")
	limit := _threshold(_config.time_place.from_level) - 1
}

_caps contains {"id": "place", "limit": limit, "why": why} if {
	not _zone_allowed
	not _has_grant("oncall")
	limit := _threshold(_config.time_place.from_level) - 1
	why := sprintf("network zone %v", [input.subject.network_zone])
}

_limit_excluding(id) := min({cap.limit | some cap in _caps; cap.id != id})

_normal_limit := min({cap.limit | some cap in _caps})

_binding_why := sort([[cap.limit, cap.why] | some cap in _caps])[0][1]

# Break-glass reaches its grant level (never the top) past every other cap.
_lifted_limit := max({_normal_limit, _break_glass_index}) if _break_glass_applied

else := _normal_limit

_mfa_index := _threshold(_config.mfa_required_from)

_step_up_needed if {
	input.subject.mfa == false
	_lifted_limit >= _mfa_index
}

# The clear limit: levels at or below it are shown in clear.
_limit := _mfa_index - 1 if _step_up_needed

else := _lifted_limit

_limit_why := sprintf("step-up MFA required from %s", [_name(_mfa_index)]) if _step_up_needed

else := "break-glass grant" if {
	_break_glass_applied
	_break_glass_index > _normal_limit
} else := _binding_why
