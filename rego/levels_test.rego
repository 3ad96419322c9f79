package crm.gateway_test

# Least privilege by level.

test_clear_up_to_clearance if {
	baseline.fields.uscc_org == clear
	baseline.fields.customer_no == clear
	baseline.fields.name == clear
	baseline.fields.income == clear
	baseline.levels.L3 == clear
}

test_one_level_above_is_standard_mask if {
	baseline.levels.L4 == standard
	baseline.fields.bank_account == standard
}

test_further_above_is_strict_mask if {
	d := decide({"clearance": "L1"}, {}, [])
	d.fields.name == standard
	d.fields.income == strict
	d.fields.bank_account == strict
}

test_top_level_dropped_even_for_top_clearance if {
	top_subject := {"clearance": "L5", "roles": ["compliance"]}
	d := decide(top_subject, {"purpose": "audit"}, []) with data.crm.config.roles.compliance.view as "L5"
	d.fields.credentials == dropped
	d.levels.L5 == dropped
	d.fields.bank_account == clear
	d.explain.credentials == "drop: L5 is never released"
}

test_unknown_category_level_is_dropped if {
	d := data.crm.gateway.decision with input as object.union(
		make_input({}, {}, []),
		{"taxonomy": {"levels": taxonomy.levels, "categories": {"odd": {"level": "LX", "spi": false}}}},
	)
	d.fields.odd == dropped
}

test_spi_category_counts_as_spi_min_level if {
	baseline.fields.health == standard
	d := decide({"clearance": "L4", "roles": ["compliance"]}, {"purpose": "audit"}, [])
	d.fields.health == clear
}

# Operations are scoped per role and level.

test_operation_scope_caps_clearance if {
	d := decide({"roles": ["customer_service"], "clearance": "L4"}, {}, [])
	d.fields.name == clear
	d.fields.income == standard
	d.fields.bank_account == strict
	contains(d.explain.income, "roles permit view up to L2")
}

test_security_admin_role_adds_no_data_view if {
	d := decide({"roles": ["security_admin"], "clearance": "L4", "department": "security"}, {"purpose": "audit"}, [])
	d.fields.customer_no == clear
	d.fields.name != clear
	d.fields.bank_account != clear
	contains(d.explain.name, "roles permit view up to L1")
}

test_export_scope_is_separate if {
	d := decide({"roles": ["customer_service"]}, {"operation": "export"}, [])
	d.allow == true
	d.fields.uscc_org == clear
	d.fields.customer_no == standard
	d.fields.name == strict
}

test_highest_role_wins if {
	d := decide({"roles": ["customer_service", "relationship_manager"]}, {}, [])
	d.fields.income == clear
}

test_write_map_follows_modify_level if {
	baseline.write.name == true
	baseline.write.customer_no == true
	baseline.write.income == false
	baseline.write.bank_account == false
	baseline.write.credentials == false
}

test_write_capped_by_clearance if {
	request := {"operation": "modify", "method": "PUT", "purpose": "correction"}
	d := decide({"roles": ["data_admin"], "clearance": "L2"}, request, [])
	d.write.name == true
	d.write.income == false
}

test_write_none_without_modify_role if {
	d := decide({"roles": ["auditor"]}, {"purpose": "audit"}, [])
	every category, _ in taxonomy.categories {
		d.write[category] == false
	}
}

# Purpose.

test_missing_purpose_masks_purpose_bound_levels if {
	d := decide({}, {"purpose": null}, [])
	d.fields.income == standard
	d.fields.name == clear
	d.obligations.purpose_required == true
	contains(d.explain.income, "no declared purpose")
}

test_purpose_not_allowed_for_role if {
	d := decide({}, {"purpose": "marketing"}, [])
	d.fields.income == standard
	d.obligations.purpose_required == true
}

test_purpose_not_required_below_threshold if {
	d := decide({"clearance": "L2"}, {"purpose": null}, [])
	d.obligations.purpose_required == false
	d.fields.name == clear
}

# Time and place.

test_outside_working_hours_masks_l3 if {
	d := decide({}, {"time": {"weekday": 3, "hour": 22, "date": "2026-11-25", "rfc3339": "2026-11-25T22:00:00+08:00"}}, [])
	d.fields.income == standard
	d.fields.name == clear
	contains(d.explain.income, "outside working hours")
}

test_sunday_is_outside_working_hours if {
	d := decide({}, {"time": {"weekday": 7, "hour": 10, "date": "2026-11-29", "rfc3339": "2026-11-29T10:00:00+08:00"}}, [])
	d.fields.income == standard
}

test_end_hour_is_exclusive if {
	d := decide({}, {"time": {"weekday": 6, "hour": 17, "date": "2026-11-28", "rfc3339": "2026-11-28T17:00:00+08:00"}}, [])
	d.fields.income == standard
	e := decide({}, {"time": {"weekday": 6, "hour": 9, "date": "2026-11-28", "rfc3339": "2026-11-28T09:00:00+08:00"}}, [])
	e.fields.income == clear
}

test_holiday_is_outside_working_hours if {
	d := decide({}, {"time": {"weekday": 4, "hour": 10, "date": "2026-10-01", "rfc3339": "2026-10-01T10:00:00+08:00"}}, [])
	d.fields.income == standard
}

test_external_zone_masks_l3 if {
	d := decide({"network_zone": "external"}, {}, [])
	d.fields.income == standard
	contains(d.explain.income, "network zone external")
}

test_vpn_zone_is_allowed if {
	d := decide({"network_zone": "vpn"}, {}, [])
	d.fields.income == clear
}

test_oncall_grant_lifts_time_and_place if {
	night := {"weekday": 7, "hour": 3, "date": "2026-11-29", "rfc3339": "2026-11-29T03:00:00+08:00"}
	oncall := grant("oncall", ["security"], {"expires": "2026-11-30T00:00:00+08:00"})
	d := decide({"network_zone": "external"}, {"time": night}, [oncall])
	d.fields.income == clear
}

test_oncall_grant_without_approval_is_ignored if {
	d := decide({"network_zone": "external"}, {}, [grant("oncall", [], {})])
	d.fields.income == standard
}

# Step-up.

test_missing_mfa_masks_mfa_levels_and_asks_step_up if {
	d := decide({"clearance": "L4", "roles": ["compliance"], "mfa": false}, {"purpose": "audit"}, [])
	d.fields.bank_account == standard
	d.fields.income == clear
	d.obligations.step_up == true
	d.obligations.acr_values == data.crm.config.step_up_acr_values
	contains(d.explain.bank_account, "step-up MFA required from L4")
}

test_no_step_up_when_mfa_levels_unreachable if {
	d := decide({"mfa": false}, {}, [])
	d.obligations.step_up == false
	d.obligations.acr_values == null
	d.fields.income == clear
}

test_unknown_threshold_level_applies_from_lowest if {
	d := decide({"mfa": false}, {}, []) with data.crm.config.mfa_required_from as "L9"
	d.obligations.step_up == true
	d.fields.uscc_org == standard
}

# Partners.

test_partner_gets_strict_masks_only if {
	d := decide(object.union(partner, {"clearance": "L1"}), {}, [])
	d.fields.customer_no == clear
	d.fields.name == strict
	d.fields.income == strict
}

# Level grants.

test_level_grant_raises_clearance if {
	d := decide({"clearance": "L2"}, {}, [grant("level", ["security"], {"level": "L3"})])
	d.fields.income == clear
}

test_level_grant_for_l4_needs_it_department if {
	g := grant("level", ["security"], {"level": "L4"})
	d := decide({"roles": ["compliance"]}, {"purpose": "audit"}, [g])
	d.fields.bank_account == standard
	h := grant("level", ["security", "it"], {"level": "L4"})
	e := decide({"roles": ["compliance"]}, {"purpose": "audit"}, [h])
	e.fields.bank_account == clear
}

test_expired_grant_is_ignored if {
	g := grant("level", ["security"], {"level": "L3", "expires": "2026-11-25T10:00:00+08:00"})
	d := decide({"clearance": "L2"}, {}, [g])
	d.fields.income == standard
}

test_unparsable_grant_expiry_is_ignored if {
	g := grant("level", ["security"], {"level": "L3", "expires": "tomorrow"})
	d := decide({"clearance": "L2"}, {}, [g])
	d.fields.income == standard
}

test_level_grant_without_level_is_ignored if {
	d := decide({"clearance": "L2"}, {}, [object.remove(grant("level", ["security"], {}), ["level"])])
	d.fields.income == standard
}

# Break-glass.

test_break_glass_unmasks_up_to_its_level if {
	g := grant("break_glass", [], {"level": "L4", "justification": "INC-42 fraud in progress"})
	d := decide({"clearance": "L1", "roles": ["customer_service"]}, {"justification": true, "purpose": null}, [g])
	d.fields.bank_account == clear
	d.fields.income == clear
	d.fields.credentials == dropped
	d.obligations.audit_level == "critical"
	d.obligations.justification_required == true
	contains(d.explain.bank_account, "break-glass grant")
}

test_break_glass_never_reaches_top if {
	g := grant("break_glass", [], {"level": "L5"})
	d := decide({"clearance": "L1"}, {"justification": true}, [g])
	d.fields.bank_account == clear
	d.fields.credentials == dropped
}

test_break_glass_without_justification_header_not_applied if {
	g := grant("break_glass", [], {"level": "L4"})
	d := decide({"clearance": "L1"}, {"justification": false}, [g])
	d.fields.income == strict
	d.obligations.audit_level == "basic"
	d.obligations.justification_required == true
}

test_break_glass_not_for_export if {
	g := grant("break_glass", [], {"level": "L4"})
	d := decide({"clearance": "L1", "roles": ["compliance"]}, {"operation": "export", "justification": true}, [g])
	d.fields.income == strict
	d.obligations.audit_level == "basic"
}

test_break_glass_never_for_partners if {
	g := grant("break_glass", [], {"level": "L4", "justification": "INC-7"})
	subject := {"clearance": "L1", "roles": ["partner_agent"], "partner": true, "partner_expires": "2099-01-01T00:00:00Z"}
	d := decide(subject, {"justification": true}, [g])
	d.fields.income == strict
	d.fields.mobile == strict
}

test_break_glass_needs_mfa if {
	g := grant("break_glass", [], {"level": "L4"})
	d := decide({"clearance": "L1", "mfa": false}, {"justification": true}, [g])
	d.fields.income == strict
	d.obligations.step_up == true
}

test_break_glass_without_level_unmasks_nothing_but_is_critical if {
	g := object.remove(grant("break_glass", [], {}), ["level"])
	d := decide({"clearance": "L1"}, {"justification": true}, [g])
	d.fields.income == strict
	d.obligations.audit_level == "critical"
}
