# Levels: the default action table. The caller's clear limit is the lowest of
# several caps (clearance, the role's scope for this operation, purpose, time
# and place, the top level); break-glass may lift it, missing MFA lowers it.
# A level at or below the limit is clear, one above is masked (standard), further
# above masked strictly, and the top level (L5) is dropped for everyone.
package crm.gateway

_levels := input.taxonomy.levels

_top := count(_levels) - 1

_level_rank := {level: i | some i, level in _levels}

_name(i) := _levels[i] if i >= 0

else := "none"

# Thresholds naming an unknown level apply from the lowest level (fail closed).
_threshold(level) := _level_rank[level] if level in _levels

else := 0

_clearance_index := max({_level_rank[input.subject.clearance], _level_grant_index}) if {
	_level_grant_index
} else := _level_rank[input.subject.clearance]

_operation_levels contains _level_rank[level] if {
	some role in input.subject.roles
	level := _config.roles[role][input.request.operation]
}

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

_caps contains {"id": "clearance", "limit": _clearance_index, "why": sprintf("clearance %s", [_name(_clearance_index)])}

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

_limit := _mfa_index - 1 if _step_up_needed

else := _lifted_limit

_limit_why := sprintf("step-up MFA required from %s", [_name(_mfa_index)]) if _step_up_needed

else := "break-glass grant" if {
	_break_glass_applied
	_break_glass_index > _normal_limit
} else := _binding_why

# Partners and external staff never get the lighter mask.
_mask_standard := {"action": "mask", "style": "strict"} if input.subject.partner == true

else := {"action": "mask", "style": "standard"}

_mask_strict := {"action": "mask", "style": "strict"}

_action_at(i) := {"action": "drop"} if i >= _top

else := {"action": "allow"} if i <= _limit

else := _mask_standard if i == _limit + 1

else := _mask_strict

_blocked := {"action": "block"}

# Category level; SPI categories count at least spi_min_level. Unknown levels count as the top.
_category_index(meta) := max({_base_index(meta.level), _spi_floor}) if meta.spi == true

else := _base_index(meta.level)

_base_index(level) := _level_rank[level] if level in _levels

else := _top

_spi_floor := _level_rank[_config.spi_min_level] if _config.spi_min_level in _levels

else := _top - 1

_category_indexes := {category: _category_index(meta) | some category, meta in input.taxonomy.categories}

fields := {category: _action_at(i) | some category, i in _category_indexes} if allow

else := {category: _blocked | some category, _ in input.taxonomy.categories}

levels := {level: _action_at(i) | some i, level in _levels} if allow

else := {level: _blocked | some level in _levels}

# Highest modify level over the caller's roles, capped by clearance; -1 when none.
_write_limit := limit if {
	allow
	limit := max({_modify_limit_for(role) | some role in input.subject.roles})
} else := -1

_modify_limit_for(role) := min({_clearance_index, _top - 1, _level_rank[_config.roles[role].modify]})

write := {category: _writable(i) | some category, i in _category_indexes}

_writable(i) if i <= _write_limit

else := false

explain := {category: _explain_at(i) | some category, i in _category_indexes} if allow

else := {category: reason | some category, _ in input.taxonomy.categories}

_explain_at(i) := sprintf("drop: %s is never released", [_name(i)]) if i >= _top

else := sprintf("allow: %s within clear limit %s (%s)", [_name(i), _name(_limit), _limit_why]) if i <= _limit

else := sprintf("mask %s: %s above clear limit %s (%s)", [_action_at(i).style, _name(i), _name(_limit), _limit_why])
