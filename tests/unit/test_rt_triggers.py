"""Real-time triggers config: the shipped file, defaults, and errors that name key and file."""

from __future__ import annotations

import pytest
import yaml

from custseg.config import ConfigError, load_config
from custseg.realtime.triggers import (
    BROWSE,
    CART,
    CROSS_SELL,
    DAYPART,
    DECLINING,
    RealtimeSettings,
    Trigger,
    load_triggers,
    parse_triggers,
    session_gap,
)


def test_shipped_file_has_the_five_kinds_with_their_parameters():
    conf = load_config("local.yaml")
    triggers = load_triggers(conf)
    kinds = {t.kind: t for t in triggers}
    assert set(kinds) == {BROWSE, CART, CROSS_SELL, DECLINING, DAYPART}
    assert kinds[BROWSE].min_views == 4 and kinds[BROWSE].item_level == "category"
    assert kinds[CART].cart_events == ("add_to_cart",)
    assert kinds[CROSS_SELL].min_confidence == 0.2 and kinds[CROSS_SELL].offer.type == "cross_sell"
    assert kinds[DAYPART].min_lunch_share == 0.5 and kinds[DAYPART].lead_minutes == 90
    assert all(t.channels == ("email", "sms") and t.holdout_share == 0.1 for t in triggers)  # defaults merged
    assert [t.priority for t in triggers] == sorted(t.priority for t in triggers)  # file order
    assert session_gap(triggers) == "30 minutes"
    s = RealtimeSettings.from_config(conf)
    assert s.watermark == "10 minutes" and s.purchase_events == ("purchase",)
    assert s.max_offers_per_customer_per_day == 1


def test_defaults_eligibility_and_disabled():
    doc = {
        "defaults": {"expiry_minutes": 60, "channels": ["sms"]},
        "triggers": {
            "cart": {
                "kind": "cart_abandonment",
                "timeout_minutes": 20,
                "eligibility": {"segments": ["Loyal"], "min_propensity": 0.3},
                "offer": {"type": "coupon", "discount": 0.15, "item": "shoes"},
                "max_per_day": 2,
            },
            "off": {"kind": "daypart", "enabled": False},
        },
    }
    (t,) = parse_triggers(doc, "t.yaml")
    assert t == Trigger(
        id="cart",
        kind=CART,
        name="cart",
        priority=0,
        channels=("sms",),
        eligibility=t.eligibility,
        min_propensity=0.3,
        offer=t.offer,
        expiry_minutes=60,
        max_per_day=2,
        timeout_minutes=20,
    )
    assert t.eligibility.segments == ("Loyal",) and t.offer.discount == 0.15 and t.offer.item == "shoes"
    assert t.consents == ("opt_in_sms",)


@pytest.mark.parametrize(
    ("trigger", "key", "fragment"),
    [
        ({"kind": "wishlist"}, "triggers.t.kind", "must be one of browse_abandonment"),
        ({"kind": "browse_abandonment", "min_views": 0}, "triggers.t.min_views", "integer >= 1"),
        ({"kind": "browse_abandonment", "item_level": "brand"}, "triggers.t.item_level", "category, sku"),
        ({"kind": "cart_abandonment", "min_views": 3}, "triggers.t.min_views", "unknown key"),
        ({"kind": "daypart", "channels": ["fax"]}, "triggers.t.channels", "unknown channel"),
        ({"kind": "daypart", "min_lunch_share": 0}, "triggers.t.min_lunch_share", "> 0"),
        ({"kind": "daypart", "holdout_share": 0.9}, "triggers.t.holdout_share", "<= 0.5"),
        ({"kind": "post_purchase_cross_sell", "offer": {"discount": 2}}, "triggers.t.offer.discount", "<= 0.9"),
        (
            {"kind": "declining_return", "eligibility": {"min_propensity": 1.5}},
            "triggers.t.eligibility.min_propensity",
            "<= 1",
        ),
        ({"kind": "declining_return", "eligibility": {"tiers": ["x"]}}, "triggers.t.eligibility.tiers", "unknown"),
        ({"kind": "declining_return", "return_events": []}, "triggers.t.return_events", "at least one"),
        ({"kind": "declining_return", "enabled": "yes"}, "triggers.t.enabled", "true or false"),
    ],
)
def test_errors_name_key_and_file(trigger, key, fragment):
    with pytest.raises(ConfigError) as err:
        parse_triggers({"triggers": {"t": trigger}}, "/conf/triggers.yaml")
    msg = str(err.value)
    assert msg.startswith("/conf/triggers.yaml: ") and key in msg and fragment in msg, msg


def test_session_triggers_must_share_their_timeout():
    doc = {
        "triggers": {
            "a": {"kind": "browse_abandonment", "timeout_minutes": 30},
            "b": {"kind": "cart_abandonment", "timeout_minutes": 45},
        }
    }
    with pytest.raises(ConfigError, match=r"t.yaml: key 'triggers.b.timeout_minutes' \(45\) must equal"):
        parse_triggers(doc, "t.yaml")


def test_bad_ids_and_top_level():
    with pytest.raises(ConfigError, match="trigger id 'Cart-1'"):
        parse_triggers({"triggers": {"Cart-1": {"kind": "daypart"}}}, "t.yaml")
    with pytest.raises(ConfigError, match=r"unknown top-level key\(s\) \['campaigns'\]"):
        parse_triggers({"campaigns": {}}, "t.yaml")


def test_load_from_a_file_beside_the_config_fails_at_start_up(tmp_path):
    import shutil

    from custseg.config import DEFAULT_CONF_DIR

    shutil.copy(DEFAULT_CONF_DIR / "base.yaml", tmp_path / "base.yaml")
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"triggers": {"lunch": {"kind": "daypart", "lead_minutes": 45}}}), encoding="utf-8")
    (tmp_path / "c.yaml").write_text("extends: base.yaml\nrealtime:\n  triggers_file: mine.yaml\n", encoding="utf-8")
    conf = load_config(tmp_path / "c.yaml")
    (t,) = load_triggers(conf)
    assert t.id == "lunch" and t.lead_minutes == 45
    mine.write_text(yaml.safe_dump({"triggers": {"lunch": {"kind": "daypart", "lead_minutes": 0}}}), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "c.yaml")  # the validator reads the triggers file at start-up
    assert str(mine) in str(err.value) and "triggers.lunch.lead_minutes" in str(err.value)
    with pytest.raises(ConfigError, match="realtime.triggers_file' names .*nope.yaml, which does not exist"):
        load_triggers(conf.with_overrides({"realtime.triggers_file": "nope.yaml"}))


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("realtime.watermark", "10 mins", "must be '<n> seconds|minutes|hours'"),
        ("realtime.max_offers_per_customer_per_day", 0, "integer >= 1"),
        ("realtime.pulse.alpha", 0.7, "between 0 and 0.5"),
    ],
)
def test_realtime_settings_errors(key, value, fragment):
    conf = load_config("local.yaml")
    with pytest.raises(ConfigError) as err:
        RealtimeSettings.from_config(conf.with_overrides({key: value}))
    assert key in str(err.value) and fragment in str(err.value)
