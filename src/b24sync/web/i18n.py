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
        "en": "An API key (from API_KEYS, or the admin key b24sync run printed and keeps in "
        "data/admin_api_key) or a Supabase access token.",
        "ru": "API-ключ (из API_KEYS или ключ администратора, который напечатал b24sync run; он "
        "хранится в data/admin_api_key) или access token Supabase.",
    },
    "token": {"en": "API key or token", "ru": "API-ключ или токен"},
    "login_failed": {
        "en": "This key or token was not accepted: it is not in API_KEYS, not the admin key, or "
        "an expired or foreign JWT. Copy it again without spaces.",
        "ru": "Ключ или токен не принят: его нет в API_KEYS, это не ключ администратора, или JWT "
        "просрочен либо выдан другим проектом. Скопируйте его ещё раз без пробелов.",
    },
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
    "entity": {"en": "Stream", "ru": "Поток"},
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
    # what the service says about runs and streams: every word a page shows comes from here
    "state_idle": {"en": "idle", "ru": "ожидает"},
    "state_running": {"en": "running", "ru": "идёт"},
    "state_queued": {"en": "queued", "ru": "в очереди"},
    "state_disabled": {"en": "disabled", "ru": "выключено"},
    "state_gone": {"en": "deleted on the portal", "ru": "удалён на портале"},
    "status_queued": {"en": "queued", "ru": "в очереди"},
    "status_running": {"en": "running", "ru": "идёт"},
    "status_success": {"en": "success", "ru": "успешно"},
    "status_failed": {"en": "failed", "ru": "ошибка"},
    "status_interrupted": {"en": "interrupted", "ru": "прервано"},
    "status_skipped": {"en": "skipped", "ru": "пропущено"},
    "mode_full": {"en": "full", "ru": "полная"},
    "mode_incremental": {"en": "incremental", "ru": "инкрементальная"},
    "mode_reconcile": {"en": "deletion check", "ru": "проверка удалений"},
    "mode_by_ids": {"en": "events", "ru": "события"},
    "group_object": {"en": "CRM objects", "ru": "Объекты CRM"},
    "group_item": {"en": "Smart processes", "ru": "Смарт-процессы"},
    "group_log": {"en": "History", "ru": "История"},
    "group_reference": {"en": "References", "ru": "Справочники"},
    "group_child": {"en": "Links and rows", "ru": "Связи и строки"},
    "records": {"en": "records", "ru": "записей"},
    "starting": {"en": "starting", "ru": "запуск"},
    "ago": {"en": "ago", "ru": "назад"},
    "in": {"en": "in", "ru": "через"},
    "bi_title": {"en": "Connect your BI tool", "ru": "Подключите BI-систему"},
    "bi_hint": {
        "en": "Metabase, DBeaver, DataLens, Power BI: choose PostgreSQL, schema bitrix24; the "
        "readable views are v_crm_*. The password is in data/bi_password (a read-only role).",
        "ru": "Metabase, DBeaver, DataLens, Power BI: выберите PostgreSQL, схему bitrix24; "
        "понятные представления — v_crm_*. Пароль — в файле data/bi_password (роль только для чтения).",
    },
    "bi_none": {
        "en": "The data is in the server of DATABASE_URL; set BI_DATABASE_URL to show analysts "
        "a read-only connection here.",
        "ru": "Данные — на сервере из DATABASE_URL; задайте BI_DATABASE_URL, чтобы показать "
        "здесь подключение только для чтения.",
    },
    "show_events": {"en": "Show event batches", "ru": "Показывать пакеты событий"},
    "previous": {"en": "← Newer", "ru": "← Новее"},
    "next": {"en": "Older →", "ru": "Старше →"},
    "chart_records": {"en": "records", "ru": "записей"},
    "chart_seconds": {"en": "seconds", "ru": "секунд"},
    "run": {"en": "Run", "ru": "Запуск"},
    "finished": {"en": "Finished", "ru": "Конец"},
    "commands": {"en": "Batch commands", "ru": "Команд в пакетах"},
    "per_second": {"en": "Records per second", "ru": "Записей в секунду"},
    "failed_conversions": {
        "en": "Values kept only in _raw",
        "ru": "Значений только в _raw",
    },
    "estimated_total": {"en": "Expected records", "ru": "Ожидалось записей"},
    "all_runs": {"en": "All runs", "ru": "Все запуски"},
    "same_stream": {"en": "Runs of this stream", "ru": "Запуски этого потока"},
    "demo_events": {
        "en": "The demo portal sends its CRM events to this service by itself (b24sync run set "
        "up its outbound webhook): change a record in the demo portal and its row follows.",
        "ru": "Демо-портал сам отправляет события CRM в этот сервис (b24sync run настроил его "
        "исходящий вебхук): измените запись в демо-портале — строка обновится.",
    },
    "declared_columns": {
        "en": "Columns declared by the stream (a reference or link table)",
        "ru": "Колонки, объявленные потоком (справочник или таблица связей)",
    },
    "report": {"en": "Report", "ru": "Отчёт"},
    "full_cost": {
        "en": "A full sync takes API calls",
        "ru": "Полная синхронизация займёт вызовов API",
    },
    "run_log": {"en": "What the run logged", "ru": "Журнал запуска"},
    "failed_ids": {"en": "Failed", "ru": "Не удалось"},
}


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return cookie
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return "en"


def stream_title(name: str, language: str) -> str:
    """A stream's title in ``language`` (smart processes come and go while serving)."""
    stream = STREAMS.get(name)
    return stream.titles.get(language, stream.title) if stream else name


def translator(language: str) -> dict[str, str]:
    return {key: texts.get(language, texts["en"]) for key, texts in LABELS.items()}
