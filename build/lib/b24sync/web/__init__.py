"""The web dashboard: server-rendered Jinja2 pages, a little vanilla JS, no build step."""
