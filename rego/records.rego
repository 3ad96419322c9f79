# Records: rules the enforcer applies per record (RecordRule in
# gateway/core/model.py). A rule matches when every `when` condition holds;
# its field actions make the defaults stricter, and the most restrictive record
# verb wins. Grades, tiers, consents and assignment are record attributes, so
# they are decided here as conditional rules rather than per request.
package crm.gateway

default records := []

records := [rule | some rule in _record_rules] if allow

# Grades: A and B need an approved grant of a listed type; C (and any grade
# configured with departments) is limited to the departments listed.
_record_rules contains {
	"when": {"grade": [grade]},
	"record": "drop",
	"reason": _grade_reason(grade, rule),
} if {
	some grade, rule in _config.grades
	not _grade_visible(grade)
}

# Tiers that raise contact data: those categories are decided one (or more) levels higher.
_record_rules contains {
	"when": {"tier": [tier]},
	"record": "show",
	"fields": {category: _level_actions[min([i + rule.raise_levels, _top - 1])] |
		some category, i in _category_indexes
		category in _config.contact_categories
	},
	"reason": sprintf("tier %s: contact data treated %d level(s) higher", [tier, rule.raise_levels]),
} if {
	some tier, rule in _config.tiers
	rule.raise_levels > 0
}

# Tiers limited to some roles (and, when listed, purposes): everyone else loses the record.
_record_rules contains {
	"when": {"tier": [tier]},
	"record": "drop",
	"reason": _tier_reason(tier, rule),
} if {
	some tier, rule in _config.tiers
	is_array(rule.roles)
	not _tier_permitted(rule)
}

# Marketing never unmasks contact data of customers without marketing consent.
_record_rules contains {
	"when": {"missing_consent": "marketing"},
	"record": "show",
	"fields": {category: _mask_standard |
		some category, _ in _category_indexes
		category in _config.contact_categories
	},
	"reason": "marketing purpose: contact data masked without marketing consent",
} if {
	input.request.purpose in _config.marketing_purposes
}

# Partners and callers limited to their own customers see assigned records only.
_record_rules contains {
	"when": {"not_assigned": true},
	"record": "drop",
	"reason": "caller sees assigned customers only",
} if {
	_assigned_only
}

# Third parties see no customer who has not consented to sharing.
_record_rules contains {
	"when": {"missing_consent": "sharing"},
	"record": "drop",
	"reason": "third party: customer has not consented to sharing",
} if {
	input.subject.partner == true
}

_grade_visible(grade) if {
	some type in _config.grades[grade].grant_types
	_has_grant(type)
}

_grade_visible(grade) if input.subject.department in _config.grades[grade].departments

_grade_reason(grade, rule) := sprintf(
	"grade %s records need an approved grant of type %s",
	[grade, concat(" or ", rule.grant_types)],
) if {
	rule.grant_types
} else := sprintf("grade %s records are limited to departments %s", [grade, concat(", ", rule.departments)])

_tier_permitted(rule) if {
	_tier_purpose_ok(rule)
	some role in input.subject.roles
	role in rule.roles
}

# The reason names the missing piece: the purpose when the caller has a listed role.
_tier_reason(tier, rule) := sprintf(
	"tier %s records need a declared purpose (X-Purpose) of %s",
	[tier, concat(", ", rule.purposes)],
) if {
	some role in input.subject.roles
	role in rule.roles
} else := sprintf("tier %s records are limited to roles %s", [tier, concat(", ", rule.roles)])

# No purposes listed (absent or empty): the role alone decides.
_tier_purpose_ok(rule) if count(object.get(rule, "purposes", [])) == 0

_tier_purpose_ok(rule) if input.request.purpose in rule.purposes

_assigned_only if input.subject.partner == true

_assigned_only if input.subject.assigned_customers_only == true
