import numpy as np
import pandas as pd
import pytest

from mrp_numpyro.data import load_cces18, load_synthetic
from mrp_numpyro.data.cces import clean_cces_raw
from mrp_numpyro.data.levels import STATES
from mrp_numpyro.data.schema import DataError


class TestSynthetic:
    def test_same_seed_same_data(self):
        a, b = load_synthetic(3000, seed=5), load_synthetic(3000, seed=5)
        pd.testing.assert_frame_equal(a.survey, b.survey)
        pd.testing.assert_frame_equal(a.poststrat, b.poststrat)
        pd.testing.assert_series_equal(a.truth.area, b.truth.area)

    def test_other_seed_other_data(self):
        a, b = load_synthetic(3000, seed=5), load_synthetic(3000, seed=6)
        assert not a.truth.area.equals(b.truth.area)

    def test_population_is_fixed_by_seed_not_n(self):
        a, b = load_synthetic(1000, seed=3), load_synthetic(5000, seed=3)
        pd.testing.assert_frame_equal(a.poststrat, b.poststrat)
        assert a.truth.national == b.truth.national

    def test_shape_like_cces(self):
        d = load_synthetic(60_000, seed=0)
        assert len(d.survey) == 60_000
        assert len(d.poststrat) == 50 * 4 * 2 * 6 * 5
        assert d.poststrat.groupby(["state", "eth", "male", "age", "educ"], observed=True).ngroups == 12_000
        counts = d.survey["state"].value_counts()
        assert set(counts.index) == set(STATES)
        assert counts.min() < 100, "some states should be small, as in the CCES"
        # Uneven cell sizes and outcomes from the model: the truth is a proper proportion.
        assert d.poststrat["n"].max() > 20 * d.poststrat["n"].median()
        assert d.truth.area.between(0.05, 0.95).all()

    def test_truth_is_poststratified_cell_probability(self):
        d = load_synthetic(1000, seed=0)
        N = d.poststrat["n"].to_numpy()
        state_total = d.poststrat.groupby("state", observed=True)["n"].sum()
        # National truth is the population-weighted mean of the state truths.
        national = float((d.truth.area * state_total.reindex(d.truth.area.index)).sum() / N.sum())
        assert national == pytest.approx(d.truth.national, rel=1e-12)

    def test_survey_outcome_matches_truth_on_large_n(self):
        # Outcomes are drawn from the true cell probabilities: with a million respondents
        # the raw state means (biased only by the uneven response propensity) track the truth.
        d = load_synthetic(1_000_000, seed=0)
        raw = d.survey.groupby("state", observed=True)["abortion"].mean()
        corr = np.corrcoef(raw.reindex(d.truth.area.index), d.truth.area)[0, 1]
        assert corr > 0.9

    @pytest.mark.parametrize("n", [0, -5, 2.5])
    def test_bad_n(self, n):
        with pytest.raises(DataError, match="data.n"):
            load_synthetic(n)


class TestCCES:
    def test_full_file(self, data_dir):
        d = load_cces18(data_dir)
        assert len(d.survey) == 59_810
        assert d.survey["abortion"].mean() == pytest.approx(0.4342, abs=5e-5)
        assert len(d.poststrat) == 12_000
        assert d.poststrat["n"].sum() == 228_443_347
        # male = -0.5 is female: 34,068 of them in the survey.
        assert (d.survey["male"] == -0.5).sum() == 34_068
        assert d.survey["repvote"].notna().all() and d.survey["region"].notna().all()

    def test_subsample_is_seeded(self, data_dir):
        a = load_cces18(data_dir, n=5000, seed=1)
        b = load_cces18(data_dir, n=5000, seed=1)
        c = load_cces18(data_dir, n=5000, seed=2)
        assert len(a.survey) == 5000
        pd.testing.assert_frame_equal(a.survey, b.survey)
        assert not a.survey.equals(c.survey)

    def test_n_above_rows_uses_all_and_says_so(self, data_dir):
        d = load_cces18(data_dir, n=100_000)
        assert len(d.survey) == 59_810
        assert any("using all rows" in note for note in d.notes)

    def test_missing_file_says_where(self, tmp_path):
        with pytest.raises(DataError) as err:
            load_cces18(tmp_path)
        message = str(err.value)
        assert "cces_all_clean.csv" in message and str(tmp_path) in message
        assert "10.7910/DVN/ZSBZ7K" in message and "MRPCaseStudy" in message

    def test_no_directory_configured(self, monkeypatch):
        monkeypatch.delenv("MRP_DATA_DIR", raising=False)
        with pytest.raises(DataError, match="MRP_DATA_DIR"):
            load_cces18(None)


class TestRawCleaning:
    @pytest.fixture()
    def raw(self, data_dir):
        return pd.read_csv(data_dir / "cc18_samp_extract.csv")

    def test_drops_missing_item_and_dc(self, raw):
        clean, dropped = clean_cces_raw(raw)
        n_na = int(raw["CC18_321d"].isna().sum())
        n_dc = int((raw["inputstate"] == 11).sum())
        assert (n_na, n_dc) == (1, 2)
        overlap = int((raw["CC18_321d"].isna() & (raw["inputstate"] == 11)).sum())
        assert len(clean) == 1000 - n_na - n_dc + overlap
        assert sum(dropped.values()) == 1000 - len(clean)

    def test_codes(self, raw):
        clean, _ = clean_cces_raw(raw)
        kept = raw[raw["CC18_321d"].notna() & (raw["inputstate"] != 11)].reset_index(drop=True)
        # Support (raw 1) becomes 1, oppose (raw 2) becomes 0.
        assert clean["abortion"].sum() == (kept["CC18_321d"] == 1).sum()
        # Raw gender 2 (female) becomes -0.5.
        assert ((kept["gender"] == 2).to_numpy() == (clean["male"] == -0.5).to_numpy()).all()
        assert (clean["eth"] == "Other").sum() == kept["race"].between(4, 8).sum()
        assert (clean["educ"] == "Some college").sum() == kept["educ"].isin([3, 4]).sum()
        first = clean.iloc[0]  # inputstate 6, gender 1, birthyr 1988, race 3, educ 3, CC18_321d 1
        assert tuple(first) == (1, "CA", "Hispanic", 0.5, "30-39", "Some college")
        assert tuple(clean.iloc[1]) == (1, "MN", "White", 0.5, "70+", "HS")

    def test_every_cleaned_cell_is_in_the_table(self, raw, data_dir):
        clean, _ = clean_cces_raw(raw)
        table = pd.read_csv(data_dir / "poststrat_df.csv")
        keys = ["state", "eth", "male", "age", "educ"]
        merged = clean.merge(table, on=keys, how="left", indicator=True)
        assert (merged["_merge"] == "both").all()

    def test_raw_format_loads(self, data_dir, tmp_path):
        for name in ("poststrat_df.csv", "statelevel_predictors.csv"):
            (tmp_path / name).symlink_to(data_dir / name)
        (tmp_path / "raw.csv").symlink_to(data_dir / "cc18_samp_extract.csv")
        d = load_cces18(tmp_path, survey_file="raw.csv", survey_format="cces18_raw")
        assert len(d.survey) == 997
        assert any("DC" in note for note in d.notes)


def test_truth_by_any_grouping():
    """truth.by: the state grouping is truth.area, none is the nation, and any other pairs with the poststratifier's labels."""
    from mrp_numpyro.data.schema import Truth
    from mrp_numpyro.poststratification import group_cells

    d = load_synthetic(2000, seed=0, structure={"age": "rw1"})
    truth = d.truth
    assert len(truth.cells) == len(d.poststrat) and {"p", "n"} <= set(truth.cells.columns)
    # Labels as the poststratifier writes them (objects); truth.area keeps its own index type.
    pd.testing.assert_series_equal(truth.by(["state"]), truth.area, check_index_type=False, check_exact=False, rtol=0, atol=1e-12)
    national = truth.by([])
    assert list(national.index) == [0] and national.iloc[0] == pytest.approx(truth.national, rel=0, abs=1e-12)
    # The state-by-age truth lines up with the poststratifier's groups of the table, in its order.
    _, labels = group_cells(d.poststrat, ["state", "age"])
    by = truth.by(["state", "age"])
    assert len(by) == 300 and by.index.names == ["state", "age"]
    pd.testing.assert_index_equal(by.index, pd.MultiIndex.from_frame(labels))
    n = truth.cells["n"]
    first = truth.cells[(truth.cells["state"] == "AL") & (truth.cells["age"] == "18-29")]
    assert by[("AL", "18-29")] == pytest.approx((first["p"] * first["n"]).sum() / first["n"].sum(), rel=1e-12)
    assert n.sum() == d.poststrat["n"].sum()
    with pytest.raises(ValueError, match="holds no cells"):
        Truth(area=truth.area, national=truth.national).by(["state"])
    with pytest.raises(ValueError, match=r"\['region'\]"):
        truth.by(["region"])
