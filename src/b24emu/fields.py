"""Standard field sets of the four CRM entities, as `crm.X.fields` describes them.

Taken from the docs' pages api-reference/crm/{deals,contacts,leads,companies}/crm-*-fields.md and
crm-*-get.md. A spec row is (name, type, title, flags): R read-only, I immutable, M multiple,
Q required; `statusType` for crm_status fields goes in the optional fifth element.
"""

from __future__ import annotations

from typing import Any

FieldDef = dict[str, Any]

_UTM = [
    ("UTM_SOURCE", "string", "Advertising system", ""),
    ("UTM_MEDIUM", "string", "Traffic type", ""),
    ("UTM_CAMPAIGN", "string", "Advertising campaign designation", ""),
    ("UTM_CONTENT", "string", "Campaign content", ""),
    ("UTM_TERM", "string", "Campaign search term", ""),
]
_MULTI = [
    ("PHONE", "crm_multifield", "Phone", "M"),
    ("EMAIL", "crm_multifield", "E-mail", "M"),
    ("WEB", "crm_multifield", "Website", "M"),
    ("IM", "crm_multifield", "Messenger", "M"),
]
_AUDIT = [
    ("ASSIGNED_BY_ID", "user", "Responsible", ""),
    ("CREATED_BY_ID", "user", "Created By", "R"),
    ("MODIFY_BY_ID", "user", "Modified By", "R"),
    ("DATE_CREATE", "datetime", "Creation Date", "R"),
    ("DATE_MODIFY", "datetime", "Modification Date", "R"),
]
_ACTIVITY = [
    ("LAST_ACTIVITY_TIME", "datetime", "Last activity", "R"),
    ("LAST_ACTIVITY_BY", "user", "Last activity by", "R"),
]
_ORIGIN = [
    ("ORIGINATOR_ID", "string", "External source", ""),
    ("ORIGIN_ID", "string", "Item ID in data source", ""),
]
_ADDRESS = [
    ("ADDRESS", "string", "Address", ""),
    ("ADDRESS_2", "string", "Address (line 2)", ""),
    ("ADDRESS_CITY", "string", "City", ""),
    ("ADDRESS_POSTAL_CODE", "string", "Zip", ""),
    ("ADDRESS_REGION", "string", "Region", ""),
    ("ADDRESS_PROVINCE", "string", "State / Province", ""),
    ("ADDRESS_COUNTRY", "string", "Country", ""),
    ("ADDRESS_COUNTRY_CODE", "string", "Country Code", ""),
]
_HAS = [
    ("HAS_PHONE", "char", "Has phone", "R"),
    ("HAS_EMAIL", "char", "Has email", "R"),
    ("HAS_IMOL", "char", "Has Open Channel", "R"),
]

# crm.activity.fields (api-reference/crm/timeline/activities/activity-base/crm-activity-fields.md)
_ACTIVITY_SPEC: list[tuple[str, ...]] = [
    ("ID", "integer", "ID", "R"),
    ("OWNER_ID", "integer", "Owner ID", "I"),
    ("OWNER_TYPE_ID", "crm_enum_ownertype", "Owner Type", "I"),
    ("TYPE_ID", "crm_enum_activitytype", "Type", "QI"),
    ("PROVIDER_ID", "string", "Provider ID", ""),
    ("PROVIDER_TYPE_ID", "string", "Provider Type", ""),
    ("PROVIDER_GROUP_ID", "string", "Connector Type", ""),
    ("ASSOCIATED_ENTITY_ID", "integer", "ID of the entity associated with the activity", "R"),
    ("SUBJECT", "string", "Subject", "Q"),
    ("START_TIME", "datetime", "Start", ""),
    ("END_TIME", "datetime", "Deadline", ""),
    ("DEADLINE", "datetime", "Due Date", ""),
    ("COMPLETED", "char", "Completed", ""),
    ("STATUS", "crm_enum_activitystatus", "Status", ""),
    ("RESPONSIBLE_ID", "user", "Responsible", "Q"),
    ("PRIORITY", "crm_enum_activitypriority", "Priority", ""),
    ("NOTIFY_TYPE", "crm_enum_activitynotifytype", "Notification Type", ""),
    ("NOTIFY_VALUE", "integer", "Notification Parameter", ""),
    ("DESCRIPTION", "string", "Description", ""),
    ("DESCRIPTION_TYPE", "crm_enum_contenttype", "Description Type", ""),
    ("DIRECTION", "crm_enum_activitydirection", "Direction", ""),
    ("LOCATION", "string", "Location", ""),
    ("CREATED", "datetime", "Creation Date", "R"),
    ("AUTHOR_ID", "user", "Created By", "R"),
    ("LAST_UPDATED", "datetime", "Last Updated", "R"),
    ("EDITOR_ID", "user", "Edited By", "R"),
    ("SETTINGS", "object", "Settings", ""),
    ("ORIGIN_ID", "string", "External Code", ""),
    ("ORIGINATOR_ID", "string", "External Source", ""),
    ("RESULT_STATUS", "integer", "RESULT_STATUS", ""),
    ("RESULT_STREAM", "integer", "RESULT_STREAM", ""),
    ("RESULT_SOURCE_ID", "string", "RESULT_SOURCE_ID", ""),
    ("PROVIDER_PARAMS", "object", "Provider Parameters", ""),
    ("PROVIDER_DATA", "string", "Provider Data", ""),
    ("RESULT_MARK", "integer", "RESULT_MARK", ""),
    ("RESULT_VALUE", "double", "RESULT_VALUE", ""),
    ("RESULT_SUM", "double", "RESULT_SUM", ""),
    ("RESULT_CURRENCY_ID", "string", "RESULT_CURRENCY_ID", ""),
    ("AUTOCOMPLETE_RULE", "integer", "Autocomplete", ""),
    ("BINDINGS", "crm_activity_binding", "Bindings", "RM"),
    ("COMMUNICATIONS", "crm_activity_communication", "Communication Channel", "QM"),
    ("FILES", "diskfile", "Files", "M"),
    ("IS_INCOMING_CHANNEL", "char", "IS_INCOMING_CHANNEL", "R"),
]

_SPECS: dict[str, list[tuple[str, ...]]] = {
    "deal": [
        ("ID", "integer", "ID", "R"),
        ("TITLE", "string", "Title", ""),
        ("TYPE_ID", "crm_status", "Type", "", "DEAL_TYPE"),
        ("CATEGORY_ID", "crm_category", "Sales Funnel", "I"),
        ("STAGE_ID", "crm_status", "Deal Stage", "", "DEAL_STAGE"),
        ("STAGE_SEMANTIC_ID", "string", "Stage Group", "R"),
        ("IS_NEW", "char", "New Deal", "R"),
        ("IS_RECURRING", "char", "Recurring Deal", ""),
        ("IS_RETURN_CUSTOMER", "char", "Repeat Deal", ""),
        ("IS_REPEATED_APPROACH", "char", "Repeated Approach", ""),
        ("PROBABILITY", "integer", "Probability", ""),
        ("CURRENCY_ID", "crm_currency", "Currency", ""),
        ("OPPORTUNITY", "double", "Amount", ""),
        ("IS_MANUAL_OPPORTUNITY", "char", "IS_MANUAL_OPPORTUNITY", ""),
        ("TAX_VALUE", "double", "Tax Rate", ""),
        ("COMPANY_ID", "crm_company", "Company", ""),
        ("CONTACT_ID", "crm_contact", "Contact", ""),
        ("CONTACT_IDS", "crm_contact", "Contacts", "M"),
        ("QUOTE_ID", "crm_quote", "Estimate", "R"),
        ("BEGINDATE", "date", "Start Date", ""),
        ("CLOSEDATE", "date", "Close Date", ""),
        ("OPENED", "char", "Available to All", ""),
        ("CLOSED", "char", "Closed", ""),
        ("COMMENTS", "string", "Comment", ""),
        *_AUDIT,
        ("MOVED_BY_ID", "user", "MOVED_BY_ID", "R"),
        ("MOVED_TIME", "datetime", "MOVED_TIME", "R"),
        ("SOURCE_ID", "crm_status", "Source", "", "SOURCE"),
        ("SOURCE_DESCRIPTION", "string", "Additional Info about Source", ""),
        ("LEAD_ID", "crm_lead", "Lead", "R"),
        ("ADDITIONAL_INFO", "string", "Additional Information", ""),
        ("LOCATION_ID", "location", "Location", ""),
        *_ORIGIN,
        *_UTM,
        *_ACTIVITY,
    ],
    "contact": [
        ("ID", "integer", "ID", "R"),
        ("HONORIFIC", "crm_status", "Salutation", "", "HONORIFIC"),
        ("NAME", "string", "Name", ""),
        ("SECOND_NAME", "string", "Second Name", ""),
        ("LAST_NAME", "string", "Last Name", ""),
        ("PHOTO", "file", "Photo", ""),
        ("BIRTHDATE", "date", "Date of Birth", ""),
        ("TYPE_ID", "crm_status", "Contact Type", "", "CONTACT_TYPE"),
        ("SOURCE_ID", "crm_status", "Source", "", "SOURCE"),
        ("SOURCE_DESCRIPTION", "string", "Source Information", ""),
        ("POST", "string", "Position", ""),
        *_ADDRESS,
        ("COMMENTS", "string", "Comment", ""),
        ("OPENED", "char", "Available to everyone", ""),
        ("EXPORT", "char", "Include in export", ""),
        *_HAS,
        *_AUDIT,
        ("COMPANY_ID", "crm_company", "Company", ""),
        ("COMPANY_IDS", "crm_company", "Companies", "M"),
        ("LEAD_ID", "crm_lead", "Lead", "R"),
        *_ORIGIN,
        ("ORIGIN_VERSION", "string", "Original version", ""),
        ("FACE_ID", "integer", "Face ID", ""),
        *_UTM,
        *_MULTI,
        *_ACTIVITY,
    ],
    "company": [
        ("ID", "integer", "ID", "R"),
        ("TITLE", "string", "Company Name", "Q"),
        ("COMPANY_TYPE", "crm_status", "Company type", "", "COMPANY_TYPE"),
        ("LOGO", "file", "Logo", ""),
        *_ADDRESS,
        ("ADDRESS_LEGAL", "string", "Legal address", ""),
        ("BANKING_DETAILS", "string", "Payment details", ""),
        ("INDUSTRY", "crm_status", "Industry", "", "INDUSTRY"),
        ("EMPLOYEES", "crm_status", "Employees", "", "EMPLOYEES"),
        ("CURRENCY_ID", "crm_currency", "Currency", ""),
        ("REVENUE", "double", "Annual revenue", ""),
        ("OPENED", "char", "Available to everyone", ""),
        ("COMMENTS", "string", "Comment", ""),
        *_HAS,
        ("IS_MY_COMPANY", "char", "My Company", ""),
        *_AUDIT,
        ("CONTACT_ID", "crm_contact", "Contact", "M"),
        ("LEAD_ID", "crm_lead", "Lead", "R"),
        *_ORIGIN,
        ("ORIGIN_VERSION", "string", "Original version", ""),
        *_UTM,
        *_MULTI,
        *_ACTIVITY,
    ],
    "lead": [
        ("ID", "integer", "ID", "R"),
        ("TITLE", "string", "Lead Name", ""),
        ("HONORIFIC", "crm_status", "Salutation", "", "HONORIFIC"),
        ("NAME", "string", "Name", ""),
        ("SECOND_NAME", "string", "Second Name", ""),
        ("LAST_NAME", "string", "Last Name", ""),
        ("BIRTHDATE", "date", "Date of Birth", ""),
        ("COMPANY_TITLE", "string", "Company Name", ""),
        ("SOURCE_ID", "crm_status", "Source", "", "SOURCE"),
        ("SOURCE_DESCRIPTION", "string", "Source Information", ""),
        ("STATUS_ID", "crm_status", "Status", "", "STATUS"),
        ("STATUS_DESCRIPTION", "string", "Status Information", ""),
        ("STATUS_SEMANTIC_ID", "string", "Status details", "R"),
        ("POST", "string", "Position", ""),
        *_ADDRESS,
        ("CURRENCY_ID", "crm_currency", "Currency", ""),
        ("OPPORTUNITY", "double", "Total", ""),
        ("IS_MANUAL_OPPORTUNITY", "char", "IS_MANUAL_OPPORTUNITY", ""),
        ("OPENED", "char", "Available to everyone", ""),
        ("COMMENTS", "string", "Comment", ""),
        *_HAS,
        *_AUDIT,
        ("MOVED_BY_ID", "user", "MOVED_BY_ID", "R"),
        ("MOVED_TIME", "datetime", "MOVED_TIME", "R"),
        ("COMPANY_ID", "crm_company", "Company", ""),
        ("CONTACT_ID", "crm_contact", "Contact", ""),
        ("CONTACT_IDS", "crm_contact", "Contacts", "M"),
        ("IS_RETURN_CUSTOMER", "char", "Repeat lead", "R"),
        ("DATE_CLOSED", "datetime", "Closed", "R"),
        *_ORIGIN,
        *_UTM,
        *_MULTI,
        *_ACTIVITY,
    ],
    "activity": _ACTIVITY_SPEC,
}


def spec_definition(spec: tuple[str, ...]) -> tuple[str, FieldDef]:
    name, ftype, title, flags = spec[:4]
    field: FieldDef = {
        "type": ftype,
        "isRequired": "Q" in flags,
        "isReadOnly": "R" in flags,
        "isImmutable": "I" in flags,
        "isMultiple": "M" in flags,
        "isDynamic": False,
        "title": title,
    }
    if len(spec) > 4:
        field["statusType"] = spec[4]
    return name, field


def standard_fields(entity: str) -> dict[str, FieldDef]:
    """A fresh copy of the standard field set of ``entity``."""
    return dict(spec_definition(spec) for spec in _SPECS[entity])


ENTITIES: tuple[str, ...] = tuple(_SPECS)
MULTIFIELDS: tuple[str, ...] = ("PHONE", "EMAIL", "WEB", "IM")
# Types whose values the API returns as integer strings ("42").
INTEGER_TYPES = frozenset(
    {
        "integer",
        "user",
        "crm_company",
        "crm_contact",
        "crm_lead",
        "crm_quote",
        "crm_category",
        "employee",
        "enumeration",
        "crm_enum_ownertype",
        "crm_enum_activitytype",
        "crm_enum_activitystatus",
        "crm_enum_activitypriority",
        "crm_enum_activitynotifytype",
        "crm_enum_contenttype",
        "crm_enum_activitydirection",
    }
)
NUMERIC_TYPES = INTEGER_TYPES | {"double"}
DATE_TYPES = frozenset({"date", "datetime"})

# User-field types the portal supports (crm.userfield.types); "user_type_id" values.
USER_FIELD_TYPES = frozenset(
    {
        "string",
        "integer",
        "double",
        "boolean",
        "date",
        "datetime",
        "enumeration",
        "money",
        "url",
        "address",
        "file",
        "employee",
        "crm",
        "crm_status",
        "iblock_element",
        "iblock_section",
    }
)


def user_field_definition(
    name: str,
    user_type: str,
    label: str,
    *,
    multiple: bool = False,
    items: list[dict[str, str]] | None = None,
) -> FieldDef:
    """How `crm.X.fields` describes a user field: labels and, for lists, items."""
    field: FieldDef = {
        "type": user_type,
        "isRequired": False,
        "isReadOnly": False,
        "isImmutable": False,
        "isMultiple": multiple,
        "isDynamic": True,
        "title": name,
        "listLabel": label,
        "formLabel": label,
        "filterLabel": label,
        "settings": {},
    }
    if user_type == "enumeration":
        field["items"] = items or []
    return field
