"""b24sync: keep a PostgreSQL copy of a Bitrix24 CRM current."""

__version__ = "0.1.0"
