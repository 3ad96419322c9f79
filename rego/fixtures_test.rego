# Shared fixtures for the policy tests: a baseline request (an internal
# relationship manager on a weekday morning) that each test patches.
package crm.gateway_test

base_subject := {
	"id": "u-1001",
	"roles": ["relationship_manager"],
	"department": "wealth",
	"clearance": "L3",
	"mfa": true,
	"auth_method": "oidc",
	"partner": false,
	"partner_expires": null,
	"disabled": false,
	"revoked": false,
	"network_zone": "internal",
	"network_allowed": true,
	"assigned_customers_only": false,
}

base_request := {
	"method": "GET",
	"operation": "view",
	"route": "/api/customers/{id}",
	"purpose": "service",
	"justification": false,
	"time": {"weekday": 3, "hour": 10, "date": "2026-11-25", "rfc3339": "2026-11-25T10:15:00+08:00"},
	"report_only": false,
}

taxonomy := {
	"levels": ["L0", "L1", "L2", "L3", "L4", "L5"],
	"categories": {
		"uscc_org": {"level": "L0", "spi": false},
		"customer_no": {"level": "L1", "spi": false},
		"name": {"level": "L2", "spi": false},
		"mobile": {"level": "L2", "spi": false},
		"email": {"level": "L2", "spi": false},
		"id_number": {"level": "L2", "spi": false},
		"health": {"level": "L2", "spi": true},
		"income": {"level": "L3", "spi": false},
		"bank_account": {"level": "L4", "spi": true},
		"credentials": {"level": "L5", "spi": false},
	},
}

# A grant expiring a day after the baseline request time.
grant(type, approved_by, extra) := object.union(
	{
		"id": sprintf("g-%s", [type]),
		"type": type,
		"approved_by": approved_by,
		"expires": "2026-11-26T10:15:00+08:00",
		"justification": null,
	},
	extra,
)

make_input(subject, request, grants) := {
	"subject": object.union(base_subject, subject),
	"request": object.union(base_request, request),
	"taxonomy": taxonomy,
	"grants": grants,
}

decide(subject, request, grants) := result if {
	# regal ignore:with-outside-test-context
	result := data.crm.gateway.decision with input as make_input(subject, request, grants)
}

baseline := decide({}, {}, [])

clear := {"action": "allow"}

standard := {"action": "mask", "style": "standard"}

strict := {"action": "mask", "style": "strict"}

dropped := {"action": "drop"}

blocked := {"action": "block"}

has_record_rule(decision, when, verb) if {
	some rule in decision.records
	rule.when == when
	rule.record == verb
}

record_fields(decision, when) := rule.fields if {
	some rule in decision.records
	rule.when == when
}
