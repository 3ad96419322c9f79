package crm.gateway_test

no_reveal := {"categories": [], "limit": 0, "period_seconds": 3600}

rm_reveal := {"categories": ["income"], "limit": 20, "period_seconds": 3600}

cs_reveal := {"categories": ["email", "id_number", "income", "mobile", "name"], "limit": 10, "period_seconds": 3600}

reveal_grant := grant("reveal", ["security"], {})

# data.crm.config with its reveal section replaced (`with` on a nested path merges)
with_reveal(config) := object.union(object.remove(data.crm.config, ["reveal"]), {"reveal": config})

test_without_a_reveal_section_nobody_reveals if {
	d := decide(cs, {"purpose": null}, []) with data.crm.config as object.remove(data.crm.config, ["reveal"])
	d.obligations.reveal == no_reveal
}

test_customer_service_reveals_l2_and_l3_without_a_purpose if {
	d := decide(cs, {"purpose": null}, [])
	d.obligations.reveal == cs_reveal
	d.fields.income == standard
}

test_l4_needs_a_reveal_grant if {
	d := decide({}, {}, [reveal_grant])
	d.obligations.reveal.categories == ["bank_account", "health", "income"]
	d.fields.bank_account == standard # the grant reveals one value at a time, it unmasks nothing
}

test_a_reveal_grant_awaiting_mfa_reveals_nothing_more if {
	d := decide({"mfa": false}, {}, [reveal_grant])
	d.obligations.reveal == rm_reveal
}

test_an_unapproved_reveal_grant_reveals_nothing_more if {
	d := decide({}, {}, [grant("reveal", [], {})])
	d.obligations.reveal == rm_reveal
}

test_the_top_level_is_never_revealable if {
	rule := {"levels": ["L3", "L4", "L5"], "limit": 5, "period_seconds": 60}
	config := {"grant_from": "L4", "grant_types": ["reveal"], "roles": {"relationship_manager": rule}}
	d := decide({}, {}, [reveal_grant]) with data.crm.config as with_reveal(config)
	not "credentials" in d.obligations.reveal.categories
	d.obligations.reveal.limit == 5
}

test_reveal_needs_a_listed_purpose if {
	d := decide({}, {"purpose": null}, [])
	d.obligations.reveal == no_reveal
}

test_no_reveal_for_partners if {
	partner := object.union(cs, {"partner": true, "partner_expires": "2027-01-01T00:00:00+08:00"})
	d := decide(partner, {"purpose": null}, [])
	d.allow == true
	d.obligations.reveal == no_reveal
}

test_no_reveal_in_export_or_writes if {
	decide(cs, {"operation": "export"}, []).obligations.reveal == no_reveal
	decide(cs, {"operation": "modify", "method": "PATCH"}, []).obligations.reveal == no_reveal
}

test_no_reveal_when_denied if {
	d := decide(object.union(cs, {"revoked": true}), {}, [])
	d.obligations.reveal == no_reveal
}

test_roles_without_reveal_get_none if {
	d := decide({"roles": ["sales"], "clearance": "L2"}, {"purpose": "sales"}, [])
	d.obligations.reveal == no_reveal
}

test_reveal_operation_is_bounded_by_the_view_scope if {
	d := decide(cs, {"operation": "reveal", "purpose": null}, [])
	d.allow == true
	d.obligations.reveal == cs_reveal
	d.obligations.audit_level == "detailed"
	d.fields == decide(cs, {"purpose": null}, []).fields
}

test_reveal_operation_needs_a_view_role if {
	roles := {"data_admin_without_view": {"modify": "L2"}}
	d := decide({"roles": ["data_admin_without_view"]}, {"operation": "reveal"}, []) with data.crm.config.roles as roles
	d.allow == false
	d.reason == "operation_not_permitted: no role permits reveal"
}

test_consent_masks_are_not_revealable if {
	marketer := {"roles": ["customer_service"], "clearance": "L2"}
	rule := {"levels": ["L2", "L3"], "limit": 3, "period_seconds": 60, "purposes": ["marketing"]}
	d := decide(marketer, {"purpose": "marketing"}, []) with data.crm.config.reveal.roles.customer_service as rule
	d.obligations.reveal.categories == ["id_number", "income"]
}

test_no_grant_threshold_means_the_roles_levels_suffice if {
	config := {"roles": {"relationship_manager": {"levels": ["L4"], "limit": 2, "period_seconds": 60}}}
	d := decide({}, {}, []) with data.crm.config as with_reveal(config)
	d.obligations.reveal == {"categories": ["bank_account", "health"], "limit": 2, "period_seconds": 60}
}

test_several_roles_union_under_the_strictest_limit if {
	subject := object.union(cs, {"roles": ["customer_service", "relationship_manager"]})
	d := decide(subject, {"purpose": "service"}, [])
	d.obligations.reveal == object.union(cs_reveal, {"limit": 10})
}
