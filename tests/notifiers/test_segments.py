"""SMS segment counting: GSM-7 and UCS-2 boundaries, and the short-text fallback."""

from __future__ import annotations

import pytest

from breachflow.notifiers.segments import encoding, fit, segments

CHINESE_NOTICE = (
    "尊敬的王芳：\n\n【事件基本情况】\n2026年3月2日，我们发现一名未经授权的第三方访问了存储客户"
    "资料的服务器，涉及您的姓名、手机号码和收货地址。\n\n【可能造成的影响】\n您可能收到冒充我们的"
    "诈骗电话或短信。\n\n【我们已采取的措施】\n我们已关闭相关访问权限，并报告了监管部门。\n\n"
    "【您可以采取的措施】\n请警惕索要验证码的来电，不要点击陌生短信中的链接，并留意账户的异常登录"
    "提醒。如您发现可疑情况，请立即修改密码并联系我们。\n\n【联系我们】\n客服热线：400-800-1234"
    "（每日9:00-21:00），电子邮箱：privacy@example.com。我们对此事给您带来的不便深表歉意。"
)
LINK = "https://notice.example.com/n/7Hq2"
CHINESE_SHORT = f"【安全通知】我们发生了涉及您个人信息的安全事件。完整通知：{LINK}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),  # 2 x 153
        ("a" * 307, 3),
        ("ж" * 70, 1),
        ("ж" * 71, 2),
        ("ж" * 134, 2),  # 2 x 67
        ("ж" * 135, 3),
        ("", 0),
    ],
)
def test_single_and_concatenated_limits(text: str, expected: int) -> None:
    """160/153 septets for GSM-7, 70/67 code units for UCS-2."""
    assert segments(text) == expected


def test_gsm7_covers_the_default_alphabet_and_its_extension_table() -> None:
    """Greek capitals, accented letters and the extension table are GSM-7; others are not."""
    assert encoding("ΔΦΓΛΩΠΨΣΘΞ ÄÖÑÜ§¿äöñüà @£$¥èéùìòÇØøÅåÆæßÉ ¡ _ \n\r") == "GSM-7"
    assert encoding("{[€|~^\\]}\f") == "GSM-7"
    assert encoding("α") == "UCS-2"  # lower-case Greek is not in the alphabet
    assert encoding("ç") == "UCS-2"  # only the capital Ç is
    assert encoding("a" * 500 + "’") == "UCS-2"  # one typographic apostrophe is enough


def test_extension_characters_cost_two_septets() -> None:
    """80 euro signs fill one segment exactly; one more character needs a second."""
    assert segments("€" * 80) == 1
    assert segments("€" * 80 + "a") == 2
    assert segments("a" * 159 + "^") == 2  # 161 septets


def test_an_escape_pair_is_not_split_across_segments() -> None:
    """306 septets would fit two segments, but the euro's escape pair cannot straddle one."""
    text = "a" * 152 + "€" + "a" * 152
    assert segments(text) == 3
    assert segments("a" * 151 + "€" + "a" * 153) == 2  # the pair ends segment one exactly


def test_ucs2_counts_utf16_code_units() -> None:
    """An emoji is a surrogate pair: two units, never split between segments."""
    assert segments("😀" * 35) == 1
    assert segments("😀" * 35 + "a") == 2
    assert segments("a" * 66 + "😀" + "a" * 66) == 3  # the pair moves to segment two
    assert segments("a" * 69 + "ж") == 1  # one Cyrillic letter makes it all UCS-2


def test_a_chinese_notice_is_ucs2_and_costs_several_segments() -> None:
    assert encoding(CHINESE_NOTICE) == "UCS-2"
    assert segments(CHINESE_NOTICE) == -(-len(CHINESE_NOTICE) // 67) > 3


def test_a_long_chinese_notice_falls_back_to_the_short_text_with_the_link() -> None:
    """Over budget, the person gets the short text, which itself fits and links to the rest."""
    chosen = fit(CHINESE_NOTICE, CHINESE_SHORT, 3)
    assert chosen == CHINESE_SHORT
    assert LINK in chosen
    assert segments(chosen) <= 3


def test_a_notice_within_budget_is_sent_whole() -> None:
    notice = "Important: a security incident involved your name and phone number. " * 2
    assert segments(notice) == 1
    assert fit(notice, "short", 1) == notice
    assert fit("a" * 161, "short", 1) == "short"
    assert fit("a" * 161, "short", 2) == "a" * 161
