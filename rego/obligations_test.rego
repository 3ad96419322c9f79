package crm.gateway_test

soon := "2026-11-25T10:18:00+08:00"

test_baseline_obligations if {
	baseline.obligations == {
		"audit_level": "basic",
		"step_up": false,
		"acr_values": null,
		"max_clear_records": data.crm.config.bulk.max_clear_records,
		"bulk_action": "mask",
		"cache_ttl": data.crm.config.cache.ttl,
		"purpose_required": false,
		"purposes": ["advisory", "loan_application", "service"],
		"justification_required": false,
		"lookup": no_lookup,
		"reveal": rm_reveal,
	}
}

test_audit_detailed_when_l4_clear if {
	d := decide({"clearance": "L4", "roles": ["compliance"]}, {"purpose": "audit"}, [])
	d.fields.bank_account == clear
	d.obligations.audit_level == "detailed"
}

test_audit_detailed_when_denied if {
	d := decide({"disabled": true}, {}, [])
	d.obligations.audit_level == "detailed"
}

test_export_beyond_limits_blocks if {
	d := decide({"roles": ["compliance"]}, {"operation": "export", "purpose": "audit"}, [])
	d.obligations.bulk_action == "block"
	d.obligations.max_clear_records.L4 == 10
}

test_bulk_grant_lifts_all_limits if {
	g := object.remove(grant("bulk_export", ["security"], {}), ["level"])
	d := decide({"roles": ["compliance"]}, {"operation": "export", "purpose": "audit"}, [g])
	d.obligations.max_clear_records == {}
	d.obligations.bulk_action == "mask"
}

test_bulk_grant_with_null_level_lifts_all_limits if {
	g := grant("bulk_export", ["security"], {"level": null})
	d := decide({"roles": ["compliance"]}, {"operation": "export", "purpose": "audit"}, [g])
	d.obligations.max_clear_records == {}
}

test_bulk_grant_with_unknown_level_lifts_nothing if {
	g := grant("bulk_export", ["security"], {"level": "L9"})
	d := decide({"roles": ["compliance"]}, {"operation": "export", "purpose": "audit"}, [g])
	d.obligations.max_clear_records == data.crm.config.bulk.max_clear_records
}

test_bulk_grant_lifts_limits_up_to_its_level if {
	g := grant("bulk_export", ["security"], {"level": "L3"})
	d := decide({"roles": ["compliance"]}, {"operation": "export", "purpose": "audit"}, [g])
	d.obligations.max_clear_records == {"L4": 10}
	d.obligations.bulk_action == "block"
}

test_bulk_grant_needs_approval if {
	d := decide({}, {"operation": "export"}, [grant("bulk_export", [], {})])
	d.obligations.max_clear_records == data.crm.config.bulk.max_clear_records
}

test_cache_ttl_short_when_grant_expires_soon if {
	d := decide({}, {}, [grant("grade_b", ["security"], {"expires": soon})])
	d.obligations.cache_ttl == data.crm.config.cache.short_ttl
}

test_cache_ttl_short_when_partner_access_ends_soon if {
	d := decide({"partner": true, "roles": ["partner_agent"], "partner_expires": soon}, {}, [])
	d.allow == true
	d.obligations.cache_ttl == data.crm.config.cache.short_ttl
}

test_cache_ttl_normal_with_long_grant if {
	d := decide({}, {}, [grant("grade_b", ["security"], {})])
	d.obligations.cache_ttl == data.crm.config.cache.ttl
}

test_step_up_for_grant_awaiting_mfa if {
	d := decide({"mfa": false}, {}, [grant("bulk_export", ["security"], {})])
	d.obligations.step_up == true
	d.obligations.acr_values != null
	d.obligations.max_clear_records == data.crm.config.bulk.max_clear_records
}

test_unknown_grant_type_ignored if {
	d := decide({"mfa": false}, {}, [grant("superuser", ["security", "it"], {})])
	d.obligations.step_up == false
	d == decide({"mfa": false}, {}, [])
}

no_lookup := {"categories": [], "limit": 0, "period_seconds": 3600}

cs_lookup := {"categories": ["id_number", "mobile", "name"], "limit": 30, "period_seconds": 3600}

cs := {"roles": ["customer_service"], "department": "customer_service", "clearance": "L2"}

test_customer_service_may_look_up_by_contact_numbers if {
	d := decide(cs, {"purpose": null}, [])
	d.obligations.lookup == cs_lookup
}

test_lookup_never_in_export if {
	d := decide(cs, {"operation": "export"}, [])
	d.obligations.lookup == no_lookup
}

test_no_lookup_when_denied if {
	d := decide(object.union(cs, {"disabled": true}), {}, [])
	d.obligations.lookup == no_lookup
}

test_roles_without_lookup_get_none if {
	d := decide({"roles": ["sales"], "clearance": "L2"}, {}, [])
	d.obligations.lookup == no_lookup
}

lookups := {
	"customer_service": {"categories": ["mobile", "credentials", "unknown"], "limit": 5, "period_seconds": 60},
	"retention": {"categories": ["name"], "limit": 9, "period_seconds": 600, "purposes": ["retention"]},
}

test_lookup_several_roles_union_under_the_strictest_limit if {
	subject := object.union(cs, {"roles": ["customer_service", "retention"]})
	d := decide(subject, {"purpose": "retention"}, []) with data.crm.config.lookup as lookups
	d.obligations.lookup == {"categories": ["mobile", "name"], "limit": 5, "period_seconds": 600}
}

test_lookup_purposes_must_be_declared if {
	subject := {"roles": ["retention"], "clearance": "L2"}
	d := decide(subject, {"purpose": "service"}, []) with data.crm.config.lookup as lookups
	d.obligations.lookup == no_lookup
}

test_lookup_never_the_top_level_or_unknown_categories if {
	d := decide(cs, {}, []) with data.crm.config.lookup as lookups
	d.obligations.lookup.categories == ["mobile"]
}

test_lookup_absent_from_config if {
	config := object.remove(data.crm.config, ["lookup"])
	d := decide(cs, {}, []) with data.crm.config as config
	d.obligations.lookup == no_lookup
}

test_declarable_purposes_are_the_union_of_the_roles_lists if {
	d := decide({"roles": ["customer_service", "compliance"]}, {}, [])
	d.obligations.purposes == ["aml", "audit", "complaint", "service"]
}

test_a_caller_without_listed_roles_may_declare_no_purpose if {
	d := decide({"roles": ["nobody"]}, {"purpose": "service"}, [])
	d.obligations.purposes == []
}

test_no_purposes_table_means_no_declarable_list if {
	d := decide({}, {}, []) with data.crm.config.purposes as null
	d.obligations.purposes == null
}
