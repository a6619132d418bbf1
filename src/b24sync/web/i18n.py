"""Dashboard labels in English and Russian; the language comes from a cookie or Accept-Language."""

from __future__ import annotations

from b24sync.streams import STREAMS

LANGUAGES = ("en", "ru")
LANGUAGE_COOKIE = "b24sync_lang"

LABELS: dict[str, dict[str, str]] = {
    "overview": {"en": "Overview", "ru": "Обзор"},
    "runs": {"en": "Runs", "ru": "Запуски"},
    "schedules": {"en": "Schedules", "ru": "Расписание"},
    "events": {"en": "Events", "ru": "События"},
    "schema": {"en": "Schema", "ru": "Схема"},
    "testdata": {"en": "Test data", "ru": "Тестовые данные"},
    "logout": {"en": "Log out", "ru": "Выйти"},
    "login": {"en": "Log in", "ru": "Войти"},
    "login_hint": {
        "en": "An API key (API_KEYS, or the admin key `b24sync run` printed) or a Supabase access token.",
        "ru": "API-ключ (API_KEYS или ключ администратора, который напечатал `b24sync run`) или access token Supabase.",
    },
    "token": {"en": "API key or token", "ru": "API-ключ или токен"},
    "login_failed": {"en": "Not accepted", "ru": "Не принято"},
    "supabase_login": {"en": "Or a Supabase user:", "ru": "Или пользователь Supabase:"},
    "email": {"en": "Email", "ru": "Эл. почта"},
    "password": {"en": "Password", "ru": "Пароль"},
    "portal": {"en": "Portal", "ru": "Портал"},
    "rows": {"en": "rows in PostgreSQL", "ru": "строк в PostgreSQL"},
    "last_run": {"en": "Last run", "ru": "Последний запуск"},
    "next_run": {"en": "Next run", "ru": "Следующий запуск"},
    "never": {"en": "never", "ru": "никогда"},
    "state": {"en": "State", "ru": "Состояние"},
    "full_sync": {"en": "Full sync", "ru": "Полная синхронизация"},
    "incremental_sync": {"en": "Incremental", "ru": "Инкрементальная"},
    "last_error": {"en": "Last error", "ru": "Последняя ошибка"},
    "entity": {"en": "Stream", "ru": "Сущность"},
    "type": {"en": "Type", "ru": "Тип"},
    "status": {"en": "Status", "ru": "Статус"},
    "started": {"en": "Started", "ru": "Начало"},
    "duration": {"en": "Duration, s", "ru": "Длительность, с"},
    "fetched": {"en": "Fetched", "ru": "Получено"},
    "upserted": {"en": "Written", "ru": "Записано"},
    "deleted": {"en": "Deleted", "ru": "Удалено"},
    "api_calls": {"en": "API calls", "ru": "Вызовов API"},
    "error": {"en": "Error", "ru": "Ошибка"},
    "all": {"en": "all", "ru": "все"},
    "filter": {"en": "Filter", "ru": "Фильтр"},
    "chart": {
        "en": "Records (bars) and duration (line) of the latest runs",
        "ru": "Записи (столбцы) и длительность (линия) последних запусков",
    },
    "enabled": {"en": "Enabled", "ru": "Включено"},
    "interval": {"en": "Interval, minutes", "ru": "Интервал, минут"},
    "webhook_enabled": {"en": "Apply events", "ru": "Применять события"},
    "save": {"en": "Save", "ru": "Сохранить"},
    "saved": {"en": "Saved", "ru": "Сохранено"},
    "mode": {"en": "Mode", "ru": "Режим"},
    "last_event": {"en": "Last event", "ru": "Последнее событие"},
    "pending": {"en": "Pending events", "ru": "Необработанных событий"},
    "lag": {"en": "Inbox lag, s", "ru": "Задержка очереди, с"},
    "register": {"en": "Register", "ru": "Зарегистрировать"},
    "unregister": {"en": "Unregister", "ru": "Отменить регистрацию"},
    "register_offline": {
        "en": "Register offline (no public URL)",
        "ru": "Офлайн-события (без публичного адреса)",
    },
    "bindings": {"en": "Bound events", "ru": "Привязанные события"},
    "showing_first": {"en": "showing the first", "ru": "показаны первые"},
    "connect_app": {"en": "Authorize the application", "ru": "Авторизовать приложение"},
    "connect_hint": {
        "en": "(the portal asks you to agree, then sends you back here with its tokens)",
        "ru": "(портал попросит подтвердить доступ и вернёт вас сюда с токенами)",
    },
    "handler_base_url": {"en": "This service's public URL", "ru": "Публичный адрес сервиса"},
    "outbound_steps": {
        "en": "How to send events with an inbound webhook configured",
        "ru": "Как получать события, если настроен входящий вебхук",
    },
    "step1": {
        "en": "In the portal open Developer resources → Other → Outbound webhook.",
        "ru": "В портале откройте «Разработчикам» → «Другое» → «Исходящий вебхук».",
    },
    "step2": {"en": "Handler URL:", "ru": "URL обработчика:"},
    "step3": {
        "en": "Events: ONCRMDEALADD/UPDATE/DELETE and the same for CONTACT, LEAD, COMPANY.",
        "ru": "События: ONCRMDEALADD/UPDATE/DELETE и такие же для CONTACT, LEAD, COMPANY.",
    },
    "step4": {
        "en": "Copy its application token into BITRIX_APPLICATION_TOKEN and restart the service.",
        "ru": "Скопируйте его токен приложения в BITRIX_APPLICATION_TOKEN и перезапустите сервис.",
    },
    "token_set": {"en": "Application token configured", "ru": "Токен приложения задан"},
    "yes": {"en": "yes", "ru": "да"},
    "no": {"en": "no", "ru": "нет"},
    "column": {"en": "Column", "ru": "Колонка"},
    "field": {"en": "Bitrix24 field", "ru": "Поле Битрикс24"},
    "label": {"en": "Label", "ru": "Название"},
    "removed": {"en": "removed on the portal", "ru": "удалено на портале"},
    "no_columns": {
        "en": "No columns yet: run a first sync.",
        "ru": "Колонок пока нет: запустите первую синхронизацию.",
    },
    "count": {"en": "How many", "ru": "Сколько"},
    "create_data": {"en": "Create test data", "ru": "Создать тестовые данные"},
    "clear_data": {"en": "Clear test data", "ru": "Удалить тестовые данные"},
    "clear_hint": {
        "en": "Clear removes only what this tool created; the original tool removed every "
        "contact and company: that is the button below.",
        "ru": "Удаляются только созданные этим инструментом записи; исходный инструмент удалял "
        "все контакты и компании: это кнопка ниже.",
    },
    "clear_all": {
        "en": "Delete ALL contacts and companies",
        "ru": "Удалить ВСЕ контакты и компании",
    },
    "confirm_all": {
        "en": "Type DELETE ALL to delete every contact and company of the portal",
        "ru": "Введите DELETE ALL, чтобы удалить все контакты и компании портала",
    },
    "busy": {"en": "Busy: another operation is running", "ru": "Занято: идёт другая операция"},
    "companies": {"en": "Companies", "ru": "Компании"},
    "contacts": {"en": "Contacts", "ru": "Контакты"},
    "members": {"en": "Members", "ru": "Сотрудники"},
    "title": {"en": "Title", "ru": "Название"},
    "name": {"en": "Full name", "ru": "ФИО"},
    "phone": {"en": "Phone", "ru": "Телефон"},
    "company": {"en": "Company", "ru": "Компания"},
    "done": {"en": "Done", "ru": "Готово"},
}


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return cookie
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return "en"


def translator(language: str) -> dict[str, str]:
    """The labels, with every stream's title (smart processes come and go while serving)."""
    streams = {f"entity_{s.name}": dict(s.titles) for s in STREAMS.values()}
    return {key: texts.get(language, texts["en"]) for key, texts in (LABELS | streams).items()}
