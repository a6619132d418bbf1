"""Bitrix24 REST: the async client, its limiter and the fast keyset export."""
