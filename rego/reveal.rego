# Reveal with reason (查看明文): the categories a caller may unmask one value
# at a time, with a stated reason, although the action table masks them
# (above the clear limit, or raised by a tier rule). The gateway hands out
# reveal handles only for these categories, and a reveal request (operation
# "reveal", decided on the record's read route) is honoured only when the
# category is listed again. Per role in data.crm.config.reveal.roles: the
# levels the role may reveal, the purposes it needs (none listed: the role
# alone decides) and a rate limit; levels from reveal.grant_from need an
# active grant of a type in reveal.grant_types. Never the top level, never for
# partners, never in export or writes, never while a declared marketing
# purpose hides contact data of customers without marketing consent.
package crm.gateway

default _reveal := {"categories": [], "limit": 0, "period_seconds": 3600}

_reveal := {
	"categories": sort(_reveal_categories),
	"limit": min({rule.limit | some rule in _reveal_rules}),
	"period_seconds": max({rule.period_seconds | some rule in _reveal_rules}),
} if {
	allow
	input.request.operation in {"view", "reveal"}
	not input.subject.partner
	count(_reveal_categories) > 0
}

_reveal_config := object.get(_config, "reveal", {})

_reveal_rules contains rule if {
	some role in input.subject.roles
	rule := object.get(_reveal_config, ["roles", role], null)
	is_object(rule)
	_reveal_purpose_ok(rule)
}

# No purposes listed: the role alone decides.
_reveal_purpose_ok(rule) if count(object.get(rule, "purposes", [])) == 0

_reveal_purpose_ok(rule) if input.request.purpose in rule.purposes

_reveal_levels contains index if {
	some rule in _reveal_rules
	some level in rule.levels
	index := _level_rank[level]
	index < _top
}

_reveal_categories contains category if {
	some category, index in _category_indexes
	index in _reveal_levels
	_reveal_grant_ok(index)
	not _reveal_consent_bound(category)
}

# Below grant_from (or no grant_from configured): the role's levels suffice.
_reveal_grant_ok(_) if not _reveal_config.grant_from

_reveal_grant_ok(index) if index < _threshold(_reveal_config.grant_from)

_reveal_grant_ok(index) if {
	index >= _threshold(_reveal_config.grant_from)
	some grant in _valid_grants
	grant.type in object.get(_reveal_config, "grant_types", [])
}

# Consent masks are not revealable: with a marketing purpose, contact data of a
# customer without marketing consent stays masked whatever the reason.
_reveal_consent_bound(category) if {
	input.request.purpose in _config.marketing_purposes
	category in _config.contact_categories
}
