"""Rendering notices: every required section, escaping, the sandbox, strictness, locales."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from jinja2.exceptions import UndefinedError
from markupsafe import escape
from pydantic import ValidationError

from breachflow import shipped
from breachflow.models.errors import InvalidInput
from breachflow.models.notice import NoticeContent, NoticeText, parse_notice_texts
from breachflow.rendering import notices
from breachflow.rendering.environment import environment
from breachflow.rendering.notices import (
    FILLED_CHANNELS,
    NoticeRenderer,
    choose_locale,
    notice_content,
    notice_locales,
    render_notice,
)
from tests.testkit.factories import HEADINGS

EXAMPLE = shipped("examples") / "notice.yaml"
DETECTED = datetime(2026, 11, 20, 1, 30, tzinfo=UTC)
AWARE = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
TEXT_FIELDS = (
    "what_happened",
    "data_involved",
    "possible_impact",
    "measures_taken",
    "protective_steps",
    "remedies",
)
WHEN = {"en": ["20 November 2026 at 01:30 (UTC)", "20 November 2026 at 07:00 (UTC)"]}
WHEN["zh-CN"] = ["2026-11-20 01:30（UTC）", "2026-11-20 07:00（UTC）"]


def example_texts() -> dict[str, NoticeText]:
    return parse_notice_texts(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))


def content(locale: str = "en", **overrides: object) -> NoticeContent:
    texts = example_texts().get(locale) or example_texts()["en"]
    fields: dict[str, object] = {
        **texts.model_dump(exclude_none=True, exclude={"channels"}),
        "locale": locale,
        "organisation": "Example Operator Ltd.",
        "incident_key": "INC-2026-0001",
        "detected_at": DETECTED,
        "aware_at": AWARE,
        "contact_point": "privacy@example.com, +86 400 000 0000",
    }
    fields.update(overrides)
    return NoticeContent.model_validate(fields)


def test_the_example_file_has_both_shipped_locales() -> None:
    """examples/notice.yaml parses into en and zh-CN texts, and both have templates."""
    texts = example_texts()
    assert set(texts) == {"en", "zh-CN"}
    assert notice_locales() >= {"en", "zh-CN"}


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_a_notice_has_every_section_and_value(locale: str) -> None:
    """Text and HTML both show every required heading and every field of the notice."""
    notice = content(locale, recipient_name="Li Lei")
    rendered = render_notice(notice)
    assert rendered.locale == locale
    assert rendered.subject == notice.subject_line
    for heading in HEADINGS[locale]["text"]:
        assert heading in rendered.text, heading
    for heading in HEADINGS[locale]["html"]:
        assert f">{heading}</h2>" in rendered.html, heading
    values = [getattr(notice, field) for field in TEXT_FIELDS]
    values += [notice.contact_point, notice.organisation, notice.incident_key, "Li Lei"]
    for value in values + WHEN[locale]:
        assert value in rendered.text, value
        assert str(escape(value)) in rendered.html, value


@pytest.mark.parametrize(
    ("locale", "greeting"), [("en", "Dear customer,"), ("zh-CN", "尊敬的用户：")]
)
def test_a_notice_without_a_name_has_a_generic_greeting(locale: str, greeting: str) -> None:
    """Without a recipient name, the notice greets generically rather than 'Dear ,'."""
    rendered = render_notice(content(locale))
    assert rendered.text.startswith(greeting)
    assert greeting in rendered.html


def test_markup_in_texts_is_escaped_in_html_and_verbatim_in_text() -> None:
    """A <script> in what_happened cannot become markup in HTML; the text part shows it as is."""
    attack = "<script>alert(1)</script> & more"
    rendered = render_notice(content(what_happened=attack, recipient_name='<b onclick="x">'))
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in rendered.html
    assert "<b onclick" not in rendered.html
    assert attack in rendered.text


def test_a_subject_with_a_newline_is_flattened() -> None:
    """A newline in the subject line cannot inject a header: it becomes one line."""
    rendered = render_notice(content(subject_line="Important\r\nBcc: everyone@example.com\n"))
    assert rendered.subject == "Important Bcc: everyone@example.com"
    assert "\n" not in rendered.subject and "\r" not in rendered.subject


def test_an_unknown_locale_is_refused() -> None:
    """Rendering for a locale with no template raises InvalidInput naming the locale."""
    with pytest.raises(InvalidInput, match="locale fr"):
        render_notice(content(locale="fr"))


@pytest.mark.parametrize("field", [*TEXT_FIELDS, "contact_point", "organisation", "detected_at"])
def test_notice_content_missing_a_field_is_refused(field: str) -> None:
    """NoticeContent cannot be built without every required field."""
    fields = content().model_dump()
    del fields[field]
    with pytest.raises(ValidationError, match=field):
        NoticeContent.model_validate(fields)


@pytest.mark.parametrize("blank", ["", "   ", "\n\t "])
@pytest.mark.parametrize("field", ["what_happened", "remedies", "contact_point", "subject_line"])
def test_notice_content_with_a_blank_field_is_refused(field: str, blank: str) -> None:
    """An empty or whitespace-only section is as bad as a missing one."""
    with pytest.raises(ValidationError, match=field):
        content(**{field: blank})


def test_parse_notice_texts_names_the_locale_and_the_missing_field() -> None:
    """A notice file whose zh-CN block lacks remedies is refused with both named."""
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    del raw["zh-CN"]["remedies"]
    with pytest.raises(InvalidInput) as caught:
        parse_notice_texts(raw)
    message = str(caught.value)
    assert "'zh-CN'" in message
    assert "remedies" in message
    assert "'en'" not in message


def test_parse_notice_texts_refuses_blank_and_unknown_fields() -> None:
    """A whitespace-only field or a misspelt key is refused, naming the field."""
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    raw["en"]["measures_taken"] = "   "
    with pytest.raises(InvalidInput, match=r"'en'.*measures_taken"):
        parse_notice_texts(raw)
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    raw["en"]["remedy"] = raw["en"].pop("remedies")
    with pytest.raises(InvalidInput, match="remed"):
        parse_notice_texts(raw)


@pytest.mark.parametrize("raw", [None, {}, [], "en: text"])
def test_parse_notice_texts_refuses_a_file_that_is_not_a_locale_map(raw: object) -> None:
    """An empty or wrongly shaped notice file is refused with guidance."""
    with pytest.raises(InvalidInput, match="maps each locale"):
        parse_notice_texts(raw)


@pytest.mark.parametrize(
    "source",
    [
        "{{ n.__class__.__mro__ }}",
        "{{ n.__class__.__init__.__globals__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ n.model_dump.__globals__['__builtins__'] }}",
        "{{ cycler.__init__.__globals__.os }}",
    ],
)
def test_the_sandbox_refuses_unsafe_attribute_access(source: str) -> None:
    """A template that reaches for Python internals fails instead of rendering them."""
    template = environment().from_string(source)
    with pytest.raises((InvalidInput, UndefinedError), match=r"unsafe|undefined|no attribute"):
        template.render(n=content())


def test_the_sandbox_is_immutable() -> None:
    """Templates cannot mutate what they are given (e.g. list.append)."""
    template = environment().from_string("{{ items.append('x') }}")
    items: list[str] = []
    with pytest.raises(InvalidInput, match="unsafe"):  # the sandbox's refusal, named
        template.render(items=items)
    assert items == []


def test_a_misspelt_variable_raises() -> None:
    """StrictUndefined: a typo in a field name is an error, not an empty paragraph."""
    with pytest.raises(UndefinedError, match="what_hapened"):
        environment().from_string("{{ n.what_hapened }}").render(n=content())
    with pytest.raises(UndefinedError):
        environment().from_string("{{ notice.what_happened }}").render(n=content())


def test_html_autoescape_depends_on_the_template_name(tmp_path: Path) -> None:
    """.html.j2 files are autoescaped, .txt.j2 files are not."""
    (tmp_path / "x.html.j2").write_text("{{ v }}", encoding="utf-8")
    (tmp_path / "x.txt.j2").write_text("{{ v }}", encoding="utf-8")
    env = environment(tmp_path)
    assert env.get_template("x.html.j2").render(v="<i>") == "&lt;i&gt;"
    assert env.get_template("x.txt.j2").render(v="<i>") == "<i>"


AVAILABLE = frozenset({"en", "zh-CN"})


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        ("zh-CN", "zh-CN"),
        ("en", "en"),
        ("zh", "zh-CN"),
        ("zh-cn", "zh-CN"),
        ("zh-Hans-CN", "zh-CN"),
        ("en-US", "en"),
        ("en-GB", "en"),
        ("fr", "en"),
        ("fr-FR", "en"),
        ("", "en"),
    ],
)
def test_choose_locale(wanted: str, expected: str) -> None:
    """Exact match first, then same language, then the default."""
    assert choose_locale(wanted, AVAILABLE, "en") == expected


def test_choose_locale_falls_back_to_the_configured_default() -> None:
    """The fallback is whatever default is configured, not always English."""
    assert choose_locale("de", AVAILABLE, "zh-CN") == "zh-CN"


HOSTILE_NAMES = [None, "Ann Lee", "王小明", "<b>O'Brien & Co</b>", '"}} {{ 7*7 }}', "a\ue000b"]


@pytest.mark.parametrize("channel", sorted(FILLED_CHANNELS))
@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_a_batch_renderer_gives_each_person_exactly_the_whole_render(
    channel: str, locale: str
) -> None:
    """Rendered once and filled in, every person's notice is what rendering it whole
    gives, hostile names escaped in HTML the same way, people without a name included."""
    renderer = NoticeRenderer()
    for _ in range(2):  # the first fill is checked; the second is the reused render
        for name in HOSTILE_NAMES:
            person = content(locale, recipient_name=name, link="https://n.example/x")
            assert renderer.render(person, channel) == render_notice(person, channel)


def test_a_template_that_does_more_with_the_name_is_rendered_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator's template may do anything with the name (here: capitals); reusing
    one person's render would then be wrong, so that render is not reused."""
    custom = tmp_path / "templates"
    shutil.copytree(shipped("templates"), custom)
    email = custom / "notice" / "email.en.txt.j2"
    email.write_text(
        email.read_text().replace("{{ n.recipient_name }}", "{{ n.recipient_name|upper }}")
    )
    monkeypatch.setattr(notices, "environment", lambda: environment(custom))
    renderer = NoticeRenderer()
    first, second = content(recipient_name="Ann Lee"), content(recipient_name="Bo Chen")
    renderer.render(first, "email")
    assert "Dear BO CHEN," in renderer.render(second, "email").text


@pytest.mark.parametrize(
    ("locale", "zone", "when"),
    [
        ("zh-CN", "Asia/Shanghai", "我们于 2026-11-20 09:30（UTC+08:00）发现该事件"),
        ("en", "America/Los_Angeles", "19 November 2026 at 17:30 (UTC\u221208:00)"),
        ("en", None, "20 November 2026 at 01:30 (UTC)"),
    ],
)
def test_times_are_given_in_the_readers_zone_with_its_offset(
    locale: str, zone: str | None, when: str
) -> None:
    """A notice said "01:30 (协调世界时)" to people in Guangzhou; they read 09:30 on their
    clocks. Without a zone from the residence, the notice says plainly that it is UTC."""
    incident = SimpleNamespace(key="INC-2026-0001", detected_at=DETECTED, aware_at=AWARE)
    config = SimpleNamespace(organisation_name="Example Ltd.", contact_point="privacy@example.com")
    texts = example_texts()[locale]
    notice = notice_content(incident, texts, locale, config, timezone=zone)  # type: ignore[arg-type]
    rendered = render_notice(notice)
    assert when in rendered.text
    assert str(escape(when)) in (rendered.html or "")
    assert "协调世界时" not in rendered.text


@pytest.mark.parametrize(
    ("locale", "reply"), [("en", "reply to this message"), ("zh-CN", "回复本邮件")]
)
def test_each_channel_says_what_it_can_do(locale: str, reply: str) -> None:
    """The call read "privacy@example.com" and "reply to this email" aloud; with the
    example's voice wording it gives a number to call. The email still invites a reply."""
    incident = SimpleNamespace(key="INC-2026-0001", detected_at=DETECTED, aware_at=AWARE)
    config = SimpleNamespace(organisation_name="Example Ltd.", contact_point="privacy@example.com")
    texts = example_texts()[locale]
    call = render_notice(
        notice_content(incident, texts.for_channel("voice"), locale, config),  # type: ignore[arg-type]
        "voice",
    )
    assert reply not in call.text and "@" not in call.text
    assert "0 8 0 0" in call.text or "4 0 0" in call.text
    email = render_notice(notice_content(incident, texts.for_channel("email"), locale, config))  # type: ignore[arg-type]
    assert reply in email.text
