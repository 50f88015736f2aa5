"""Event layouts: the built-ins, serialisation, equality and clear errors for bad layouts."""

import json

import numpy as np
import pytest
from contrastx.events import layout as L
from contrastx.events.layout import (
    ADC2021,
    DIPHOTON,
    EventFeature,
    EventLayout,
    LayoutError,
    ObjectFeature,
    ObjectGroup,
    get_layout,
    load_layout,
)


def small(**overrides) -> EventLayout:
    """A user-declared layout: 3 jets, 1 photon kept out, MET; 5 features; 2 event features."""
    spec = dict(
        name="mine",
        groups=(
            ObjectGroup("jet", "j", 3, eta_max=2.5),
            ObjectGroup("photon", "y", 1, eta_max=2.37, encoder=False),
            ObjectGroup("MET", "MET", 1, eta_max=0),
        ),
        features=(
            ObjectFeature("pt", log=True),
            ObjectFeature("eta"),
            ObjectFeature("phi"),
            ObjectFeature("btag", low=0, high=1),
            ObjectFeature("is_jet", one_hot="jet"),
        ),
        event_features=(EventFeature("ht", log=True), EventFeature("m_y", encoder=False)),
    )
    spec.update(overrides)
    return EventLayout(**spec)


def test_adc2021_is_the_module_constants():
    assert ADC2021.n_objects == L.N_OBJECTS == 19 and ADC2021.n_features == L.N_FEATURES == 3
    assert ADC2021.feature_names == L.FEATURES and ADC2021.slot_names == L.SLOT_NAMES
    assert np.array_equal(ADC2021.slot_group + 1, L.SLOT_CLASS_IDS)
    assert np.array_equal(ADC2021.slot_eta_max, L.SLOT_ETA_MAX)
    assert ADC2021.group_slots("jet") == L.JET_SLOTS and ADC2021.group_slots("MET") == slice(0, 1)
    assert ADC2021.encoder_slots.tolist() == list(range(19)) and ADC2021.n_event_features == 0
    assert not ADC2021.validate_order  # published files are read as they are
    # the serialised form must not drift: files and models record it
    assert ADC2021.fingerprint == (
        "01697896eb192020024396abd418435f43e07c98e89a5b07c1b01cd19f267b91"
    ), ADC2021.fingerprint


def test_diphoton_follows_the_paper():
    enc = DIPHOTON.encoder_slots
    assert enc.size == 11 and DIPHOTON.n_features == 12  # 11 objects x 12 features
    counts = {g.name: g.count for g in DIPHOTON.groups if g.encoder}
    assert counts == {"jet": 4, "large_r_jet": 2, "electron": 2, "muon": 2, "MET": 1}
    # the photons are stored but never reach the encoder
    photons = DIPHOTON.group_slots("photon")
    assert not np.isin(np.arange(photons.start, photons.stop), enc).any()
    assert DIPHOTON.one_hot_features.sum() == 5
    assert DIPHOTON.feature_names[:4] == ("pt", "eta", "phi", "mass")
    assert DIPHOTON.log_features.tolist()[:4] == [True, False, False, True]
    # m_gg is kept beside the events, out of the encoder
    m_gg = DIPHOTON.event_feature_index("m_gg")
    assert m_gg not in DIPHOTON.encoder_event_features.tolist()
    assert DIPHOTON.encoder_event_features.size == 2
    # each encoder group is flagged by its own one-hot column; photons by none
    expected = np.zeros((13, 5))
    for col, g in enumerate(("jet", "large_r_jet", "electron", "muon", "MET")):
        sl = DIPHOTON.group_slots(g)
        expected[sl, col] = 1
    assert np.array_equal(DIPHOTON.slot_one_hot, expected)
    assert get_layout("diphoton") is DIPHOTON and get_layout("adc2021") is ADC2021


def test_dict_json_roundtrip_equality_and_hash():
    mine = small()
    back = EventLayout.from_dict(json.loads(json.dumps(mine.to_dict())))
    assert back == mine and hash(back) == hash(mine) and back.fingerprint == mine.fingerprint
    assert EventLayout.from_json(mine.to_json()) == mine
    # the description is for people: not part of equality or the fingerprint
    other = small(description="another text")
    assert other == mine and other.fingerprint == mine.fingerprint
    # any field that changes the data changes both
    wider = small(groups=(ObjectGroup("jet", "j", 4, eta_max=2.5), *mine.groups[1:]))
    assert wider != mine and wider.fingerprint != mine.fingerprint
    assert {mine: 1}[back] == 1
    for built_in in (ADC2021, DIPHOTON):
        assert EventLayout.from_json(built_in.to_json()) == built_in


def test_layout_is_immutable():
    mine = small()
    with pytest.raises(AttributeError):
        mine.name = "other"
    with pytest.raises(AttributeError):
        mine.groups[0].count = 9


def test_slot_names_and_lookups():
    mine = small()
    assert mine.slot_names == ("j1", "j2", "j3", "y", "MET")
    assert mine.encoder_slots.tolist() == [0, 1, 2, 4]
    assert mine.encoder_event_features.tolist() == [0]
    assert mine.feature_index("btag") == 3
    with pytest.raises(ValueError, match=r"no object feature 'mass'.*pt, eta, phi, btag, is_jet"):
        mine.feature_index("mass")
    with pytest.raises(ValueError, match="no object group 'muon'"):
        mine.group_slots("muon")
    with pytest.raises(ValueError, match="no event feature 'n_jets'"):
        mine.event_feature_index("n_jets")
    p = np.zeros((2, 5, 5), np.float32)
    p[0, [0, 3, 4], 0] = [10, 20, 30]
    mine.fill_one_hot(p)
    assert p[0, :, 4].tolist() == [1, 0, 0, 0, 0] and not p[1].any()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": ""}, r"layout name must be an identifier"),
        ({"groups": ()}, r"layout 'mine': groups must hold at least one"),
        ({"features": (ObjectFeature("eta"),)}, r"features must include 'pt'"),
        (
            {"groups": (ObjectGroup("jet", "j", 2), ObjectGroup("jet", "J", 1))},
            r"duplicate group names: jet",
        ),
        (
            {"groups": (ObjectGroup("jet", "j", 11), ObjectGroup("fat", "j1", 1))},
            r"duplicate slot names j1",
        ),
        (
            {"groups": (ObjectGroup("jet", "j", 2, order_by="mass"),)},
            r"group 'jet' is ordered by 'mass', which is not an object feature",
        ),
        (
            {
                "features": (
                    ObjectFeature("pt"),
                    ObjectFeature("eta"),
                    ObjectFeature("x", one_hot="muon"),
                )
            },
            r"one-hot feature 'x' flags 'muon', which is not an object group",
        ),
        (
            {
                "features": (
                    ObjectFeature("pt"),
                    ObjectFeature("eta"),
                    ObjectFeature("a", one_hot="jet"),
                    ObjectFeature("b", one_hot="jet"),
                )
            },
            r"group 'jet' is flagged by two one-hot features, 'a' and 'b'",
        ),
        (
            {"features": (ObjectFeature("pt"), ObjectFeature("phi"))},
            r"group 'jet' has an eta_max but the layout has no 'eta' feature",
        ),
        (
            {"groups": (ObjectGroup("jet", "j", 2, encoder=False),)},
            r"at least one object group must be an encoder input",
        ),
        ({"groups": [ObjectGroup("jet", "j", 2), {"name": "x"}]}, r"groups\[1\] must be a"),
        (
            {"event_features": (EventFeature("ht"), EventFeature("ht"))},
            r"duplicate event feature names: ht",
        ),
    ],
)
def test_bad_layouts_name_the_field(overrides, message):
    with pytest.raises(LayoutError, match=message):
        small(**overrides)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ObjectGroup("jet", "j", 0), r"object group 'jet': count must be a positive"),
        (lambda: ObjectGroup("jet", "j", 2.0), r"count must be a positive integer; got 2\.0"),
        (lambda: ObjectGroup("jet", "j", True), r"count must be a positive integer; got True"),
        (lambda: ObjectGroup("jet", "j", 2, eta_max=-1), r"eta_max must be >= 0"),
        (lambda: ObjectGroup("jet", "j", 2, eta_max="2.5"), r"eta_max must be a number"),
        (lambda: ObjectGroup("jet", "j", 2, eta_max=float("inf")), r"eta_max must be finite"),
        (lambda: ObjectGroup("2jet", "j", 2), r"name must be an identifier.*'2jet'"),
        (lambda: ObjectGroup("jet", "j", 2, encoder=1), r"encoder must be true or false"),
        (lambda: ObjectFeature("btag", low=1, high=0), r"'btag': low \(1\) must be below high"),
        (lambda: ObjectFeature("m", log=True, low=-1), r"'m': a logged feature is non-negative"),
        (lambda: ObjectFeature("t", one_hot="jet", log=True), r"one-hot type column is 0 or 1"),
        (lambda: ObjectFeature("pt", log="yes"), r"'pt': log must be true or false"),
        (lambda: EventFeature("ht", encoder="no"), r"'ht': encoder must be true or false"),
    ],
)
def test_bad_parts_name_the_field(build, message):
    with pytest.raises(LayoutError, match=message):
        build()
    assert issubclass(LayoutError, ValueError) and issubclass(LayoutError, TypeError)


def test_from_dict_errors_name_the_key():
    good = small().to_dict()
    with pytest.raises(LayoutError, match=r"layout: unknown key\(s\) 'colour'"):
        EventLayout.from_dict({**good, "colour": "red"})
    with pytest.raises(LayoutError, match=r"missing key\(s\) 'features'"):
        EventLayout.from_dict({k: v for k, v in good.items() if k != "features"})
    groups = [dict(g) for g in good["groups"]]
    groups[1]["cnt"] = 2
    with pytest.raises(LayoutError, match=r"layout 'mine': groups\[1\]: unknown key\(s\) 'cnt'"):
        EventLayout.from_dict({**good, "groups": groups})
    del groups[1]["cnt"], groups[1]["count"]
    with pytest.raises(LayoutError, match=r"groups\[1\]: missing key\(s\) 'count'"):
        EventLayout.from_dict({**good, "groups": groups})
    with pytest.raises(LayoutError, match=r"version 2 was written by a newer contrastx"):
        EventLayout.from_dict({**good, "version": 2})
    with pytest.raises(LayoutError, match=r"format is 'other'"):
        EventLayout.from_dict({**good, "format": "other"})
    with pytest.raises(LayoutError, match=r"features must be a list of tables"):
        EventLayout.from_dict({**good, "features": "pt"})
    with pytest.raises(LayoutError, match=r"is not valid JSON"):
        EventLayout.from_json("{")


def test_user_layout_files(tmp_path):
    toml = tmp_path / "mine.toml"
    toml.write_text(
        'name = "mine"\n'
        "[[groups]]\n"
        'name = "jet"\nlabel = "j"\ncount = 3\neta_max = 2.5\n'
        "[[groups]]\n"
        'name = "photon"\nlabel = "y"\ncount = 1\neta_max = 2.37\nencoder = false\n'
        "[[groups]]\n"
        'name = "MET"\nlabel = "MET"\ncount = 1\neta_max = 0\n'
        "[[features]]\n"
        'name = "pt"\nlog = true\n'
        "[[features]]\n"
        'name = "eta"\n'
        "[[features]]\n"
        'name = "phi"\n'
        "[[features]]\n"
        'name = "btag"\nlow = 0\nhigh = 1\n'
        "[[features]]\n"
        'name = "is_jet"\none_hot = "jet"\n'
        "[[event_features]]\n"
        'name = "ht"\nlog = true\n'
        "[[event_features]]\n"
        'name = "m_y"\nencoder = false\n'
    )
    assert load_layout(toml) == small() == get_layout(str(toml))
    js = tmp_path / "mine.json"
    js.write_text(small().to_json(indent=1))
    assert get_layout(js) == small()
    assert get_layout(small().to_dict()) == small()
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "x"\n[[groups]]\nname = "jet"\nlabel = "j"\ncount = 0\n[[features]]\nname = "pt"\n'
    )
    with pytest.raises(
        LayoutError,
        match=r"bad\.toml 'x': groups\[0\]: object group 'jet': count must be a positive",
    ):
        load_layout(bad)
    bad.write_text("name = \n")
    with pytest.raises(LayoutError, match=r"bad\.toml: not valid TOML"):
        load_layout(bad)
    with pytest.raises(FileNotFoundError, match="layout file not found"):
        load_layout(tmp_path / "none.json")
    with pytest.raises(LayoutError, match=r"unknown layout 'adc2022'; built-in layouts: adc2021"):
        get_layout("adc2022")
    with pytest.raises(LayoutError, match=r"got int"):
        get_layout(3)


def test_describe_lists_groups_and_encoder_inputs():
    text = DIPHOTON.describe()
    assert text.splitlines()[0] == "layout 'diphoton': 13 objects x 12 features"
    assert "2 x photon, by pT, |eta| < 2.37, not an encoder input" in text
    assert "m_gg (not an encoder input)" in text and "slot 10: 1 x MET" in text
