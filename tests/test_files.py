"""data=files: any survey by config, checked against the case-study path, and its bad input."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mrp_numpyro.data import DataError, load_cces18, load_files, load_synthetic
from mrp_numpyro.design.cells import build_design
from mrp_numpyro.design.formula import parse_formula

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
FORMULA = (
    "abortion ~ (1 | state) + (1 | eth) + (1 | educ) + (1 | age) + male + (1 | male:eth) + (1 | educ:age)"
    " + (1 | educ:eth) + repvote + factor(region)"
)


def _writer():
    spec = importlib.util.spec_from_file_location("foreign_survey", REPO / "experiments" / "foreign_survey.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _readme_section() -> str:
    text = README.read_text()
    return text[text.index("## Bring your own survey") :]


def readme_config() -> dict:
    """The data config of the README's example, as a mapping for load_files (seed resolved)."""
    block = re.search(r"```yaml\n(.*?)```", _readme_section(), flags=re.S).group(1)
    cfg = yaml.safe_load(block.replace("${seed}", "0"))
    cfg.pop("_target_")
    return cfg


def _design(data):
    return build_design(parse_formula(FORMULA, columns=data.survey.columns), data)


def _assert_same_design(a, b):
    for cells_a, cells_b in ((a.survey, b.survey), (a.poststrat, b.poststrat)):
        np.testing.assert_array_equal(cells_a.X, cells_b.X)
        np.testing.assert_array_equal(cells_a.group_index, cells_b.group_index)
        for field in ("trials", "successes", "weights"):
            va, vb = getattr(cells_a, field), getattr(cells_b, field)
            assert (va is None) == (vb is None)
            if va is not None:
                np.testing.assert_array_equal(va, vb)
    np.testing.assert_array_equal(a.x_center, b.x_center)
    np.testing.assert_array_equal(a.x_scale, b.x_scale)
    assert a.layout == b.layout and a.n_respondents == b.n_respondents


@pytest.fixture(scope="module")
def synthetic():
    return load_synthetic(3000, seed=4)


@pytest.fixture()
def foreign(tmp_path, synthetic):
    """The README's foreign coding of a small synthetic survey, and its config."""
    _writer().write(tmp_path, synthetic, seed=1, aggregate=True)
    cfg = readme_config() | {"dir": str(tmp_path)}
    return tmp_path, cfg


def _table_columns(df):
    cols = ["abortion", "state", "eth", "male", "age", "educ", "repvote", "region"]
    out = df[cols].copy()
    for c in ("state", "eth", "age", "educ", "region"):
        out[c] = out[c].astype(str)
    return out.reset_index(drop=True)


class TestForeignSurvey:
    def test_same_data_as_the_case_study_coding(self, foreign, synthetic):
        _, cfg = foreign
        data = load_files(**cfg)
        pd.testing.assert_frame_equal(_table_columns(data.survey), _table_columns(synthetic.survey))
        _assert_same_design(_design(data), _design(synthetic))
        notes = "\n".join(data.notes)
        assert "dropped 25 of 3025 row(s)" in notes and "recode eth: 3000 of 3000 row(s) changed" in notes

    def test_the_cces_in_another_coding_equals_the_case_study_path(self, data_dir, tmp_path):
        """The full 2018 CCES written in the foreign coding and read back by the README's YAML."""
        cces = load_cces18(data_dir)
        _writer().write(tmp_path, cces, seed=2)
        data = load_files(**(readme_config() | {"dir": str(tmp_path)}))
        pd.testing.assert_frame_equal(_table_columns(data.survey), _table_columns(cces.survey))
        _assert_same_design(_design(data), _design(cces))

    def test_crosstab_rows_fit_the_same_cells(self, foreign, synthetic):
        _, cfg = foreign
        crosstab = cfg | {"survey_file": "my_crosstab.csv", "exclude": {}, "outcome_map": None}
        crosstab["columns"] = {**cfg["columns"], "survey": {**cfg["columns"]["survey"], "supporters": "abortion"}}
        del crosstab["columns"]["survey"]["q_abortion"]
        crosstab["schema"] = cfg["schema"] | {"trials": "respondents"}
        data = load_files(**crosstab)
        assert data.n_respondents == 3000 and len(data.survey) < 3000
        _assert_same_design(_design(data), _design(synthetic))

    def test_readme_example_runs_from_the_command_line(self, tmp_path):
        commands = re.search(r"```bash\n(.*?)```", _readme_section(), flags=re.S).group(1).strip().splitlines()
        conf = tmp_path / "my_conf" / "data"
        conf.mkdir(parents=True)
        block = re.search(r"```yaml\n(.*?)```", _readme_section(), flags=re.S).group(1)
        (conf / "my_survey.yaml").write_text(block)
        writer, fit = commands
        assert writer.startswith("python experiments/foreign_survey.py") and fit.startswith("python -m mrp_numpyro")

        def run(line, *extra):
            command = [sys.executable, *line.split()[1:], *extra]
            return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)

        (tmp_path / "experiments").symlink_to(REPO / "experiments")
        done = run(writer, "--n", "2000")
        assert done.returncode == 0, done.stderr
        done = run(fit, "experiment=fast", "hydra.run.dir=run")
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert summary["n_respondents"] == 2000 and summary["data"].startswith("my_survey:")
        state = pd.read_csv(tmp_path / "run" / "estimates_state.csv")
        assert len(state) == 50 and state["mean"].between(0, 1).all()
        # The census table in its own coding poststratifies the saved fit: the config's renames apply.
        from mrp_numpyro.app.repoststratify import repoststratify

        again = repoststratify(tmp_path / "run", tmp_path / "my_data" / "my_census.parquet")
        np.testing.assert_array_equal(again.tables["state"]["mean"], state["mean"])


@pytest.fixture(scope="module")
def cces(data_dir):
    return pd.read_csv(data_dir / "cces_all_clean.csv")


class TestWholeFileValidated:
    """A bad row outside the data.n subsample still rejects the file, whatever the seed."""

    @pytest.mark.parametrize(
        ("column", "value", "message"),
        [
            ("abortion", 2, "must be 0/1"),
            ("abortion", np.nan, "must be 0/1"),
            ("state", "ZZ", r"'state' has 1 value\(s\) outside the declared levels .*'ZZ'"),
        ],
    )
    def test_bad_row_outside_the_subsample(self, cces, data_dir, tmp_path, column, value, message):
        n, seed = 3000, 0
        chosen = set(np.random.default_rng(seed).choice(len(cces), size=n, replace=False).tolist())
        row = next(i for i in range(len(cces)) if i not in chosen)
        bad = cces.copy()
        bad[column] = bad[column].astype(object)
        bad.loc[row, column] = value
        bad.to_csv(tmp_path / "bad.csv", index=False)
        for name in ("poststrat_df.csv", "statelevel_predictors.csv"):
            (tmp_path / name).symlink_to(data_dir / name)
        with pytest.raises(DataError, match=message) as err:
            load_cces18(tmp_path, survey_file="bad.csv", n=n, seed=seed)
        assert "'bad.csv'" in str(err.value)
        # The same subsample of the good file loads.
        cces.to_csv(tmp_path / "good.csv", index=False)
        assert len(load_cces18(tmp_path, survey_file="good.csv", n=n, seed=seed).survey) == n

    def test_cces_preset_equals_the_python_loader(self, data_dir):
        from hydra.utils import instantiate

        from mrp_numpyro.app.config import compose_config

        cfg = compose_config(["data=cces18", f"data.dir={data_dir}", "data.n=5000", "seed=3"])
        from_yaml = instantiate(cfg.data)
        from_python = load_cces18(data_dir, n=5000, seed=3)
        pd.testing.assert_frame_equal(from_yaml.survey, from_python.survey)
        pd.testing.assert_frame_equal(from_yaml.poststrat, from_python.poststrat)
        assert from_yaml.schema == from_python.schema


class TestBadInput:
    def _load(self, cfg, **change):
        return load_files(**(cfg | change))

    def test_schema_names_a_missing_column(self, foreign):
        _, cfg = foreign
        schema = cfg["schema"] | {"numeric": ["male", "income"]}
        with pytest.raises(DataError, match=r"survey 'my_survey.csv' is missing column\(s\) \['income'\]"):
            self._load(cfg, schema=schema)

    def test_rename_of_a_column_the_file_lacks(self, foreign):
        _, cfg = foreign
        columns = {**cfg["columns"], "poststrat": {**cfg["columns"]["poststrat"], "popn": "n"}}
        with pytest.raises(DataError, match=r"renames column\(s\) \['popn'\] that poststratification table 'my_census.parquet'"):
            self._load(cfg, columns=columns)

    def test_level_neither_table_nor_recode_knows(self, foreign):
        _, cfg = foreign
        recode = {**cfg["recode"], "eth": {k: v for k, v in cfg["recode"]["eth"].items() if k != "mixed"}}
        with pytest.raises(DataError, match=r"survey 'my_survey.csv' column 'eth' .* 'mixed'.*data.recode"):
            self._load(cfg, recode=recode)

    def test_unknown_area_with_levels_from_the_table(self, foreign):
        path, cfg = foreign
        survey = pd.read_csv(path / "my_survey.csv")
        survey.loc[5, "st"] = "ZZ"
        survey.to_csv(path / "my_survey.csv", index=False)
        with pytest.raises(DataError, match=r"column 'state' has 1 value\(s\) outside the declared levels .*'ZZ'"):
            self._load(cfg)

    def test_recode_merging_two_table_levels(self, foreign):
        path, cfg = foreign
        # A copied line: codes 2 and 3 both to "Some college", and "HS" reached by no code.
        recode = {**cfg["recode"], "educ": {**cfg["recode"]["educ"], 2: "Some college"}}
        with pytest.raises(DataError, match=r"sends survey codes \['2', '3'\] to 'Some college'.*\['HS'\] receive no code"):
            self._load(cfg, recode=recode)
        # Two of the table's own levels sent to one.
        survey = pd.read_csv(path / "my_survey.csv")
        survey["edu"] = survey["edu"].map(dict(enumerate(["No HS", "HS", "Some college", "4-Year College", "Post-grad"], 1)))
        survey.to_csv(path / "my_survey.csv", index=False)
        recode = {**cfg["recode"], "educ": {"HS": "Some college"}}
        with pytest.raises(DataError, match=r"sends \['HS', 'Some college'\] to 'Some college'.*separate levels"):
            self._load(cfg, recode=recode)
        # A deliberate collapse of codes the table does not have is fine (race: four codes to Other).
        assert len(self._load(cfg, recode={**cfg["recode"], "educ": {}}).survey) == 3000

    def test_survey_level_absent_from_the_table_outside_the_subsample(self, foreign):
        path, cfg = foreign
        schema = cfg["schema"] | {
            "factors": {**cfg["schema"]["factors"], "eth": ["White", "Black", "Hispanic", "Other", "Asian"]}
        }
        recode = {**cfg["recode"], "eth": {**cfg["recode"]["eth"], "asian": "Asian"}}
        for seed in range(3):
            with pytest.raises(
                DataError, match=r"column 'eth' has level\(s\) absent from the poststratification table 'my_census"
            ):
                self._load(cfg, schema=schema, recode=recode, n=200, seed=seed)

    def test_cut_outside_its_breaks(self, foreign):
        _, cfg = foreign
        cut = {"age": cfg["cut"]["age"] | {"breaks": [25, 30, 40, 50, 60, 70, 120]}}
        with pytest.raises(DataError, match=r"'age_years'.*outside the breaks"):
            self._load(cfg, cut=cut)

    @pytest.mark.parametrize(
        ("edit", "message"),
        [
            ({"supporters": lambda d: d["respondents"] + 1}, "more successes"),
            ({"supporters": lambda d: -d["supporters"] - 1}, "non-negative whole numbers of successes"),
            ({"respondents": lambda d: d["respondents"] * 0}, "positive whole numbers of respondents"),
        ],
    )
    def test_bad_crosstab_counts(self, foreign, edit, message):
        path, cfg = foreign
        table = pd.read_csv(path / "my_crosstab.csv")
        column, change = next(iter(edit.items()))
        table.loc[:3, column] = change(table.loc[:3])
        table.to_csv(path / "my_crosstab.csv", index=False)
        survey_columns = {k: v for k, v in cfg["columns"]["survey"].items() if k != "q_abortion"} | {"supporters": "abortion"}
        with pytest.raises(DataError, match=message):
            self._load(
                cfg,
                survey_file="my_crosstab.csv",
                exclude={},
                outcome_map=None,
                columns={**cfg["columns"], "survey": survey_columns},
                schema=cfg["schema"] | {"trials": "respondents"},
            )

    def test_subsample_of_a_crosstab_is_refused(self, foreign):
        _, cfg = foreign
        survey_columns = {k: v for k, v in cfg["columns"]["survey"].items() if k != "q_abortion"} | {"supporters": "abortion"}
        with pytest.raises(DataError, match="pre-aggregated"):
            self._load(
                cfg,
                survey_file="my_crosstab.csv",
                exclude={},
                outcome_map=None,
                n=100,
                columns={**cfg["columns"], "survey": survey_columns},
                schema=cfg["schema"] | {"trials": "respondents"},
            )

    def test_unknown_schema_key_and_missing_file(self, foreign):
        path, cfg = foreign
        with pytest.raises(DataError, match=r"unknown key\(s\) \['factor'\]"):
            self._load(cfg, schema=cfg["schema"] | {"factor": {}})
        with pytest.raises(DataError, match=rf"'nope.csv' was not found in {re.escape(str(path.resolve()))}"):
            self._load(cfg, survey_file="nope.csv")

    def test_bad_input_writes_no_estimates(self, foreign, tmp_path):
        from mrp_numpyro.app.config import compose_config
        from mrp_numpyro.app.run import run

        path, cfg = foreign
        survey = pd.read_csv(path / "my_survey.csv")
        survey.loc[7, "race"] = "martian"
        survey.to_csv(path / "my_survey.csv", index=False)
        from omegaconf import OmegaConf, open_dict

        conf = compose_config(["data=files", "experiment=fast"])
        with open_dict(conf):
            conf.data = OmegaConf.merge(conf.data, OmegaConf.create(cfg))
        out = tmp_path / "run"
        with pytest.raises(DataError, match="martian"):
            run(conf, out)
        assert not list(out.glob("estimates_*.csv")) and (out / "INCOMPLETE").is_file()
