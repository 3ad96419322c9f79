# Levels: the default action table. A level at or below the clear limit
# (limits.rego) is clear, one above is masked (standard), further above masked
# strictly, and the top level (L5) is dropped for everyone. Categories take the
# action of their level; SPI categories count at least spi_min_level.
package crm.gateway

# Partners and external staff never get the lighter mask.
default _mask_standard := {"action": "mask", "style": "standard"}

_mask_standard := _mask_strict if input.subject.partner == true

_mask_strict := {"action": "mask", "style": "strict"}

_blocked := {"action": "block"}

default _action_at(_) := {"action": "mask", "style": "strict"}

_action_at(i) := {"action": "drop"} if i >= _top

else := {"action": "allow"} if i <= _limit

else := _mask_standard if i == _limit + 1

# Category level; unknown levels count as the top, SPI counts at least spi_min_level.
_category_indexes[category] := _category_index(meta) if some category, meta in input.taxonomy.categories

_category_index(meta) := max({object.get(_level_rank, meta.level, _top), _spi_floor}) if meta.spi == true

else := object.get(_level_rank, meta.level, _top)

_spi_floor := _level_rank[_config.spi_min_level] if _config.spi_min_level in _levels

else := _top - 1

# Per-level tables: each level is decided once, categories look their level up.
_level_actions := [_action_at(i) | some i, _ in _levels]

_level_explains := [_explain_at(i) | some i, _ in _levels]

fields := {category: _level_actions[i] | some category, i in _category_indexes} if allow

else := {category: _blocked | some category, _ in input.taxonomy.categories}

levels := {level: _level_actions[i] | some i, level in _levels} if allow

else := {level: _blocked | some level in _levels}

# Highest modify level over the caller's roles, capped by clearance; -1 when none.
default _write_limit := -1

_write_limit := max({_modify_limit_for(role) | some role in input.subject.roles}) if allow

_modify_limit_for(role) := min({_clearance_index, _top - 1, _level_rank[_config.roles[role].modify]})

write[category] := _writable(i) if some category, i in _category_indexes

default _writable(_) := false

_writable(i) if i <= _write_limit

explain := {category: _level_explains[i] | some category, i in _category_indexes} if allow

else := {category: reason | some category, _ in input.taxonomy.categories}

_explain_at(i) := sprintf("drop: %s is never released", [_name(i)]) if i >= _top

else := sprintf("allow: %s within clear limit %s (%s)", [_name(i), _name(_limit), _limit_why]) if i <= _limit

else := sprintf(
	"mask %s: %s above clear limit %s (%s)",
	[_action_at(i).style, _name(i), _name(_limit), _limit_why],
)
