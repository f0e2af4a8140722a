"""Bad input gets an error that names the table, the column and example bad values."""

import numpy as np
import pandas as pd
import pytest
from hydra.errors import ConfigCompositionException, InstantiationException

from mrp_numpyro.app.config import compose_config
from mrp_numpyro.data.schema import DataError
from mrp_numpyro.data.synthetic import SYNTHETIC_SCHEMA, _population
from mrp_numpyro.data.validation import build_mrp_data


@pytest.fixture(scope="module")
def tables():
    area, cells, _, _ = _population(np.random.default_rng(0))
    survey = cells.iloc[::37, :5].reset_index(drop=True)
    survey.insert(0, "abortion", np.arange(len(survey)) % 2)
    return survey, cells, area


def build(survey, cells, area):
    return build_mrp_data(survey, cells, area, SYNTHETIC_SCHEMA, source="test")


def test_good_tables_pass(tables):
    d = build(*tables)
    assert len(d.survey) == len(tables[0])


def test_missing_column(tables):
    survey, cells, area = tables
    with pytest.raises(DataError, match=r"survey is missing column\(s\) \['educ'\]"):
        build(survey.rename(columns={"educ": "education"}), cells, area)


@pytest.mark.parametrize(
    "values, shown",
    [([1, 2], "2"), (["Support", "Oppose"], "'Support'"), ([1.0, np.nan], "nan")],
)
def test_outcome_not_binary(tables, values, shown):
    survey, cells, area = tables
    bad = survey.copy()
    bad["abortion"] = bad["abortion"].astype(object)
    bad.loc[:1, "abortion"] = values
    with pytest.raises(DataError, match=r"outcome column 'abortion' must be 0/1") as err:
        build(bad, cells, area)
    assert shown in str(err.value)


def test_unknown_level(tables):
    survey, cells, area = tables
    bad = survey.copy()
    bad["eth"] = bad["eth"].astype(object)
    bad.loc[0, "eth"] = "Martian"
    with pytest.raises(DataError, match=r"survey column 'eth' has 1 value\(s\) outside .*'Martian'"):
        build(bad, cells, area)


def test_numeric_column_with_text(tables):
    survey, cells, area = tables
    bad = survey.copy()
    bad["male"] = bad["male"].astype(object)
    bad.loc[3, "male"] = "M"
    with pytest.raises(DataError, match=r"column 'male' must be numeric .*'M'"):
        build(bad, cells, area)


def test_survey_level_missing_from_table(tables):
    survey, cells, area = tables
    table = cells[cells["age"] != "70+"]
    survey = survey.copy()
    survey.loc[0, "age"] = "70+"
    with pytest.raises(DataError, match=r"survey column 'age' has level\(s\) absent from the poststratification table: '70\+'"):
        build(survey, table, area)


def test_table_only_levels_work_with_a_note(tables):
    survey, cells, area = tables
    d = build(survey[survey["state"] != "WY"], cells, area)
    assert any("state" in note and "'WY'" in note and "hierarchy" in note for note in d.notes)


def test_duplicated_cells(tables):
    survey, cells, area = tables
    with pytest.raises(DataError, match="duplicated cell rows"):
        build(survey, pd.concat([cells, cells.iloc[:2]]), area)


@pytest.mark.parametrize("value, shown", [(-3.0, "-3.0"), (2.5, "2.5"), (np.nan, "nan")])
def test_bad_population_counts(tables, value, shown):
    survey, cells, area = tables
    bad = cells.copy()
    bad.loc[5, "n"] = value
    with pytest.raises(DataError, match=r"column 'n' must hold non-negative whole population counts") as err:
        build(survey, bad, area)
    assert shown in str(err.value)


def test_state_with_zero_population(tables):
    survey, cells, area = tables
    bad = cells.copy()
    bad.loc[bad["state"] == "VT", "n"] = 0
    with pytest.raises(DataError, match=r"every cell of state 'VT' has n = 0"):
        build(survey, bad, area)


def test_empty_survey(tables):
    survey, cells, area = tables
    with pytest.raises(DataError, match="survey has no rows"):
        build(survey.iloc[:0], cells, area)


def test_unknown_guide_lists_valid_ones():
    with pytest.raises(ConfigCompositionException) as err:
        compose_config(["guide=meanfeild"])
    message = str(err.value)
    for name in ("meanfield", "fullrank", "lowrank", "iaf"):
        assert name in message


def test_unknown_inference_lists_valid_ones():
    with pytest.raises(ConfigCompositionException, match="nuts"):
        compose_config(["inference=hmc"])


@pytest.mark.parametrize(
    ("override", "shown"),
    [
        ("device.x64=maybe", "device.x64"),
        ("budget.svi_draws=many", "budget.svi_draws"),
        ("poststrat.chunk_size=1.5", "poststrat.chunk_size"),
        ("model.priors.sd.shap=2", "model.priors.sd.shap"),
        ("device.x65=true", "device.x65"),
    ],
)
def test_the_config_schemas_refuse_unknown_keys_and_wrong_types(override, shown):
    """Refused when the config is composed, naming the key, before any data are read."""
    with pytest.raises(ConfigCompositionException, match=shown.replace(".", r"\.")):
        compose_config([override])


def test_bad_n_from_config():
    from hydra.utils import instantiate

    cfg = compose_config(["data.n=0"])
    with pytest.raises(InstantiationException, match=r"n \(data.n\) must be positive"):
        instantiate(cfg.data)


def test_outcome_recoded_by_explicit_mapping(tables):
    from mrp_numpyro.data.validation import recode_outcome

    survey, cells, area = tables
    labelled = survey.assign(abortion=np.where(survey["abortion"] == 1, "Support", "Oppose"))
    recoded = recode_outcome(labelled, "abortion", {"Support": 1, "Oppose": 0})
    assert (recoded["abortion"] == survey["abortion"]).all()
    build(recoded, cells, area)
    labelled.loc[0, "abortion"] = "Skipped"
    with pytest.raises(DataError, match=r"not in the outcome mapping \['Support', 'Oppose'\]: 'Skipped'"):
        recode_outcome(labelled, "abortion", {"Support": 1, "Oppose": 0})
    with pytest.raises(DataError, match="must map to 0 or 1"):
        recode_outcome(labelled, "abortion", {"Support": 2, "Oppose": 0})


def test_cces_outcome_map_from_config(data_dir, tmp_path):
    from mrp_numpyro.data import load_cces18

    survey = pd.read_csv(data_dir / "cces_all_clean.csv").head(3000)
    survey["abortion"] = survey["abortion"].map({1: "Support", 0: "Oppose"})
    survey.to_csv(tmp_path / "labelled.csv", index=False)
    for name in ("poststrat_df.csv", "statelevel_predictors.csv"):
        (tmp_path / name).symlink_to(data_dir / name)
    with pytest.raises(DataError, match="must be 0/1"):
        load_cces18(tmp_path, survey_file="labelled.csv")
    d = load_cces18(tmp_path, survey_file="labelled.csv", outcome_map={"Support": 1, "Oppose": 0})
    assert len(d.survey) == 3000 and set(d.survey["abortion"].unique()) <= {0, 1}


def test_unknown_predictive_check_column_fails_before_the_fit():
    from mrp_numpyro.app.pipeline import prepare

    with pytest.raises(DataError, match=r"checks.predictive names column\(s\) \['ethnicity'\]"):
        prepare(compose_config(["experiment=fast", "checks.predictive=[ethnicity]"]))
