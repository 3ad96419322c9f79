package crm.gateway_test

# Grades.

grade_a := {"grade": ["A"]}

grade_b := {"grade": ["B"]}

grade_c := {"grade": ["C"]}

test_grade_a_dropped_without_grant if {
	has_record_rule(baseline, grade_a, "drop")
}

test_grade_a_shown_with_dual_approval_and_mfa if {
	d := decide({}, {}, [grant("grade_a", ["security", "it"], {})])
	not has_record_rule(d, grade_a, "drop")
	d.obligations.audit_level == "detailed"
}

test_grade_a_needs_both_departments if {
	d := decide({}, {}, [grant("grade_a", ["security"], {})])
	has_record_rule(d, grade_a, "drop")
}

test_grade_a_needs_mfa if {
	d := decide({"mfa": false}, {}, [grant("grade_a", ["security", "it"], {})])
	has_record_rule(d, grade_a, "drop")
	d.obligations.step_up == true
}

test_grade_a_expired_grant_dropped if {
	d := decide({}, {}, [grant("grade_a", ["security", "it"], {"expires": "2026-11-25T10:14:59+08:00"})])
	has_record_rule(d, grade_a, "drop")
}

test_grade_b_dropped_without_grant if {
	has_record_rule(baseline, grade_b, "drop")
}

test_grade_b_shown_with_security_approval if {
	d := decide({"mfa": false}, {}, [grant("grade_b", ["security"], {})])
	not has_record_rule(d, grade_b, "drop")
	has_record_rule(d, grade_a, "drop")
}

test_grade_a_grant_also_covers_grade_b if {
	d := decide({}, {}, [grant("grade_a", ["security", "it"], {})])
	not has_record_rule(d, grade_b, "drop")
}

test_grade_c_by_department if {
	not has_record_rule(baseline, grade_c, "drop")
	d := decide({"department": "facilities"}, {}, [])
	has_record_rule(d, grade_c, "drop")
}

# Tiers.

test_vip_contact_data_one_level_higher if {
	d := decide({"clearance": "L2", "roles": ["customer_service"]}, {}, [])
	d.fields.mobile == clear
	fields := record_fields(d, {"tier": ["VIP"]})
	fields.mobile == standard
	fields.name == standard
	not fields.customer_no
	not fields.landline
}

test_vip_raise_never_reaches_top if {
	d := decide({}, {}, []) with data.crm.config.tiers as {"VIP": {"raise_levels": 9}}
	fields := record_fields(d, {"tier": ["VIP"]})
	fields.mobile == standard
}

test_churned_limited_to_roles_and_purposes if {
	has_record_rule(baseline, {"tier": ["流失"]}, "drop")
	d := decide({"roles": ["retention"]}, {"purpose": "retention"}, [])
	not has_record_rule(d, {"tier": ["流失"]}, "drop")
	e := decide({"roles": ["retention"]}, {"purpose": null}, [])
	has_record_rule(e, {"tier": ["流失"]}, "drop")
}

test_prospects_limited_to_sales_and_marketing if {
	has_record_rule(baseline, {"tier": ["潜在"]}, "drop")
	d := decide({"roles": ["sales"], "department": "sales"}, {"purpose": "sales"}, [])
	not has_record_rule(d, {"tier": ["潜在"]}, "drop")
}

test_prospect_reason_names_the_missing_purpose if {
	d := decide({"roles": ["sales"], "department": "sales"}, {"purpose": null}, [])
	some rule in d.records
	rule.when == {"tier": ["潜在"]}
	rule.reason == "tier 潜在 records need a declared purpose (X-Purpose) of sales, marketing, audit"
	e := decide({"roles": ["retention"]}, {"purpose": "sales"}, [])
	some other in e.records
	other.when == {"tier": ["潜在"]}
	other.reason == "tier 潜在 records are limited to roles sales, marketing, compliance"
}

test_tier_without_purpose_list_needs_role_only if {
	d := decide({"roles": ["retention"]}, {"purpose": null}, []) with data.crm.config.tiers["流失"].purposes as []
	not has_record_rule(d, {"tier": ["流失"]}, "drop")
}

# Consent.

test_marketing_masks_contact_data_without_consent if {
	d := decide({"roles": ["marketing"], "clearance": "L2", "department": "marketing"}, {"purpose": "marketing"}, [])
	d.fields.mobile == clear
	fields := record_fields(d, {"missing_consent": "marketing"})
	fields.mobile == standard
	fields.email == standard
	not fields.id_number
}

test_no_consent_rule_for_other_purposes if {
	not record_fields(baseline, {"missing_consent": "marketing"})
}

# Partners and assignment.

partner := {"partner": true, "roles": ["partner_agent"], "partner_expires": "2026-12-31T00:00:00Z"}

test_partner_sees_assigned_customers_with_sharing_consent_only if {
	d := decide(partner, {}, [])
	has_record_rule(d, {"not_assigned": true}, "drop")
	has_record_rule(d, {"missing_consent": "sharing"}, "drop")
}

test_partner_marketing_mask_is_strict if {
	d := decide(partner, {"purpose": "marketing"}, []) with data.crm.config.purposes.partner_agent as ["marketing"]
	fields := record_fields(d, {"missing_consent": "marketing"})
	fields.mobile == strict
}

test_staff_limited_to_assigned_customers if {
	d := decide({"assigned_customers_only": true}, {}, [])
	has_record_rule(d, {"not_assigned": true}, "drop")
	not has_record_rule(d, {"missing_consent": "sharing"}, "drop")
}

test_staff_see_unassigned_customers_by_default if {
	not has_record_rule(baseline, {"not_assigned": true}, "drop")
}

test_denied_request_has_no_record_rules if {
	d := decide({"revoked": true}, {}, [])
	d.records == []
}

test_every_record_rule_has_a_reason if {
	d := decide(partner, {"purpose": "marketing"}, [])
	every rule in d.records {
		rule.reason != ""
		rule.record in {"show", "drop", "block"}
	}
}
