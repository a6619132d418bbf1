"""Bitrix24 field metadata -> PostgreSQL tables: identifiers, the type map, the DDL planner."""
