package crm.gateway_test

test_baseline_allowed if {
	baseline.allow == true
	baseline.reason == "allowed"
	baseline.revision == data.crm.config.revision
	baseline.report_only == false
}

test_every_category_and_level_is_decided if {
	every category, _ in taxonomy.categories {
		baseline.fields[category].action
		baseline.explain[category]
		is_boolean(baseline.write[category])
	}
	every level in taxonomy.levels {
		baseline.levels[level].action
	}
}

test_revoked_subject_blocks_everything if {
	d := decide({"revoked": true}, {}, [])
	d.allow == false
	contains(d.reason, "subject_revoked")
	d.records == []
	d.obligations.audit_level == "detailed"
	d.obligations.step_up == false
	every category, _ in taxonomy.categories {
		d.fields[category] == blocked
		d.write[category] == false
		contains(d.explain[category], "subject_revoked")
	}
	every level in taxonomy.levels {
		d.levels[level] == blocked
	}
}

test_disabled_subject_denied if {
	d := decide({"disabled": true}, {}, [])
	d.allow == false
	d.reason == "subject_disabled"
	d.fields.name == blocked
}

test_revoked_subject_is_never_report_only if {
	d := decide({"revoked": true}, {"report_only": true}, [])
	d.report_only == false
}

test_unknown_clearance_denied if {
	d := decide({"clearance": "L9"}, {}, [])
	d.allow == false
	d.reason == "clearance_unknown: L9"
}

test_taxonomy_without_levels_denied if {
	one_level := {"taxonomy": {"levels": ["L0"], "categories": {}}}
	d := data.crm.gateway.decision with input as object.union(make_input({}, {}, []), one_level)
	d.allow == false
	contains(d.reason, "taxonomy_invalid: fewer than two levels")
}

test_operation_without_permission_denied if {
	d := decide({"roles": ["marketing"]}, {"operation": "delete", "method": "DELETE"}, [])
	d.allow == false
	d.reason == "operation_not_permitted: no role permits delete"
	d.fields.customer_no == blocked
}

test_unknown_role_denied if {
	d := decide({"roles": ["intern"]}, {}, [])
	d.allow == false
	startswith(d.reason, "operation_not_permitted")
}

test_network_not_allowed_denied if {
	d := decide({"network_allowed": false}, {}, [])
	d.allow == false
	d.reason == "network_not_allowed"
}

test_partner_expired_denied if {
	d := decide({"partner": true, "roles": ["partner_agent"], "partner_expires": "2026-11-25T10:00:00+08:00"}, {}, [])
	d.allow == false
	d.reason == "partner_access_expired"
}

test_partner_without_expiry_denied if {
	d := decide({"partner": true, "roles": ["partner_agent"], "partner_expires": null}, {}, [])
	d.allow == false
	d.reason == "partner_access_expired"
}

test_partner_current_allowed if {
	d := decide({"partner": true, "roles": ["partner_agent"], "partner_expires": "2026-12-31T00:00:00Z"}, {}, [])
	d.allow == true
}

test_several_deny_reasons_are_listed_sorted if {
	d := decide({"revoked": true, "network_allowed": false}, {}, [])
	d.reason == "network_not_allowed; subject_revoked"
}

test_empty_input_is_a_defined_denial if {
	d := data.crm.gateway.decision with input as {}
	d.allow == false
	d.fields == {}
	d.records == []
	d.reason != "allowed"
}

test_report_only_from_request if {
	d := decide({}, {"report_only": true}, [])
	d.report_only == true
	d.allow == true
}

test_report_only_from_config if {
	d := baseline with data.crm.config.report_only as true
	d.report_only == true
}

test_revision_comes_from_data if {
	d := baseline with data.crm.config.revision as "abc123"
	d.revision == "abc123"
}
