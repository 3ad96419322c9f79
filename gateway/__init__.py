"""crm-gateway: tiered customer-information authorization in front of a legacy CRM."""

__version__ = "0.1.0"
