"""Campaign config: parsing, defaults, inline overrides, and errors that name the key."""

from __future__ import annotations

import pytest
import yaml

from custseg.config import ConfigError, load_config
from custseg.marketing.campaigns import (
    CHANNEL_CONSENT,
    FeatureFilter,
    glob_regex,
    history_matches,
    load_campaigns,
    parse_campaigns,
)

VALID = {
    "goal": "retention",
    "channels": ["email", "sms"],
    "cost_per_contact": 0.5,
    "revenue_per_response": 60,
    "margin_per_response": 20,
    "budget": 500,
}


def _doc(**over):
    return {"campaigns": {"keep": {**VALID, **over}}}


def test_valid_campaign_with_defaults_merged():
    doc = {
        "defaults": {"holdout_share": 0.2, "suppression": {"contacted_within_days": 3}},
        "campaigns": {
            "keep": {
                **VALID,
                "suppression": {"complained": False},
                "eligibility": {
                    "rfm_segments": ["At Risk"],
                    "filters": [{"column": "recency_days", "op": ">=", "value": 60}],
                },
            },
        },
    }
    (c,) = parse_campaigns(doc, "campaigns.yaml")
    assert c.id == "keep" and c.goal == "retention" and c.channels == ("email", "sms")
    assert c.holdout_share == 0.2
    assert c.suppression.contacted_within_days == 3 and c.suppression.complained is False  # deep merge
    assert c.suppression.complaint_lookback_days == 90  # built-in default
    assert c.eligibility.rfm_segments == ("At Risk",)
    assert c.eligibility.filters == (FeatureFilter("recency_days", ">=", 60),)
    assert c.consents == ("opt_in_email", "opt_in_sms")
    assert c.offer.type == "coupon" and c.offer.daypart == "preferred"


@pytest.mark.parametrize(
    ("over", "key", "fragment"),
    [
        ({"goal": "upsell"}, "campaigns.keep.goal", "must be one of retention"),
        ({"channels": ["email", "fax"]}, "campaigns.keep.channels", "unknown channel"),
        ({"channels": []}, "campaigns.keep.channels", "at least one"),
        ({"holdout_share": 0.9}, "campaigns.keep.holdout_share", "<= 0.5"),
        ({"cost_per_contact": 0}, "campaigns.keep.cost_per_contact", "> 0"),
        ({"budget": "lots"}, "campaigns.keep.budget", "must be a number"),
        ({"margin_per_response": 80}, "campaigns.keep.margin_per_response", "cannot exceed"),
        ({"colour": "red"}, "campaigns.keep.colour", "unknown key"),
        ({"offer": {"daypart": "midnight"}}, "campaigns.keep.offer.daypart", "must be one of"),
        ({"frequency_cap": {"max_contacts": 0}}, "campaigns.keep.frequency_cap.max_contacts", "integer >= 1"),
        (
            {"eligibility": {"filters": [{"column": "x", "op": "~", "value": 1}]}},
            "campaigns.keep.eligibility.filters[0].op",
            "must be one of",
        ),
        (
            {"eligibility": {"filters": [{"column": "x", "op": "between", "value": [5, 1]}]}},
            "campaigns.keep.eligibility.filters[0].value",
            "[low, high]",
        ),
        (
            {"eligibility": {"filters": [{"column": "x; drop", "op": "==", "value": 1}]}},
            "campaigns.keep.eligibility.filters[0].column",
            "column name",
        ),
        ({"seed": {"rfm_segments": ["Champions"]}}, "campaigns.keep.seed", "only for acquisition"),
    ],
)
def test_errors_name_file_and_key(over, key, fragment):
    with pytest.raises(ConfigError) as err:
        parse_campaigns(_doc(**over), "conf/campaigns.yaml")
    msg = str(err.value)
    assert msg.startswith("conf/campaigns.yaml:"), msg
    assert key in msg and fragment in msg, msg


def test_missing_required_and_bad_id():
    doc = {"campaigns": {"keep": {k: v for k, v in VALID.items() if k != "budget"}}}
    with pytest.raises(ConfigError, match=r"'campaigns.keep.budget' is required"):
        parse_campaigns(doc, "f.yaml")
    with pytest.raises(ConfigError, match="campaign id 'Bad Id'"):
        parse_campaigns({"campaigns": {"Bad Id": VALID}}, "f.yaml")
    with pytest.raises(ConfigError, match="unknown top-level"):
        parse_campaigns({"campaign": {}}, "f.yaml")


def test_inline_overrides_file_campaign_by_key_and_adds_new():
    inline = {"keep": {"budget": 50}, "extra": {**VALID, "goal": "growth", "channels": ["ads"]}}
    got = {c.id: c for c in parse_campaigns(_doc(), "f.yaml", inline)}
    assert got["keep"].budget == 50 and got["keep"].cost_per_contact == 0.5
    assert got["extra"].goal == "growth" and got["extra"].channels == ("ads",)


def test_history_globs():
    assert history_matches("RET_2026_01", ("RET_*",))
    assert not history_matches("XRET_1", ("RET_*",))
    assert glob_regex(()) == "$^"


def _conf_dir(tmp_path, campaigns: dict | str):
    (tmp_path / "base.yaml").write_text(
        "storage:\n  engine: auto\nmarketing:\n  campaigns_file: campaigns.yaml\n  campaigns: {}\n"
        "  holdout_salt: s\n  propensity:\n    validation_share: 0.3\n"
    )
    text = campaigns if isinstance(campaigns, str) else yaml.safe_dump(campaigns)
    (tmp_path / "campaigns.yaml").write_text(text)
    return tmp_path / "base.yaml"


def test_load_config_validates_campaigns_file_at_start_up(tmp_path):
    import custseg.marketing.campaigns  # noqa: F401  (registers the validator)

    ok = _conf_dir(tmp_path, _doc())
    conf = load_config(ok, env={})
    assert [c.id for c in load_campaigns(conf)] == ["keep"]
    bad = _conf_dir(tmp_path, _doc(holdout_share=-1))
    with pytest.raises(ConfigError, match=r"campaigns.yaml: key 'campaigns.keep.holdout_share'"):
        load_config(bad, env={})


def test_settings_checked(tmp_path):
    import custseg.marketing.campaigns  # noqa: F401

    path = _conf_dir(tmp_path, _doc())
    conf = load_config(path, env={})
    with pytest.raises(ConfigError, match=r"key 'marketing.propensity.validation_share' must be a number from 0.05"):
        conf.with_overrides({"marketing.propensity.validation_share": 0.9})


def test_demo_campaigns_file_is_valid_and_covers_every_goal():
    conf = load_config("local.yaml", env={"CUSTSEG_PII_SALT": "x"})
    campaigns = load_campaigns(conf)
    assert {c.goal for c in campaigns} == {"retention", "growth", "reactivation", "acquisition"}
    assert all(set(c.channels) <= set(CHANNEL_CONSENT) for c in campaigns)
    acquisition = next(c for c in campaigns if c.goal == "acquisition")
    assert acquisition.seed is not None and "ads" in acquisition.channels
