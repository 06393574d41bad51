"""The Databricks bundle and the EMR steps point at entry points, scripts and configs that exist."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib
import yaml

import custseg.entrypoints as entrypoints
from custseg.stages import PIPELINE

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "deploy" / "databricks" / "databricks.yml"
EMR = ROOT / "deploy" / "emr"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def scripts() -> dict[str, str]:
    return PYPROJECT["project"]["scripts"]


def resolve_entry_point(name: str):
    """The function a console script runs, checked in pyproject.toml and in the module."""
    assert name in scripts(), f"entry point {name} is not in pyproject.toml [project.scripts]"
    module, _, func = scripts()[name].partition(":")
    assert module == "custseg.entrypoints", scripts()[name]
    fn = getattr(entrypoints, func, None)
    assert callable(fn), f"custseg.entrypoints has no function {func}"
    return fn


def test_every_stage_has_a_console_script():
    for stage in [*PIPELINE, "pipeline", "maintain"]:
        resolve_entry_point(f"custseg-{stage}")
    assert set(entrypoints.STAGES) == {*PIPELINE, "pipeline", "maintain"}


def test_entry_point_passes_argv_and_exits_with_the_job_status(monkeypatch):
    import custseg.cli

    calls = []
    monkeypatch.setattr(custseg.cli, "job_main", lambda stage, argv: calls.append((stage, argv)) or 3)
    monkeypatch.setattr(sys, "argv", ["custseg-report", "--date", "2026-06-30", "--conf", "x.yaml"])
    with pytest.raises(SystemExit) as exit_info:
        entrypoints.report()
    assert exit_info.value.code == 3
    assert calls == [("report", ["--date", "2026-06-30", "--conf", "x.yaml"])]


# --- Databricks ------------------------------------------------------------------------


def _resolve(text: str, variables: dict[str, str]) -> str:
    """${var.x} from the bundle's variables, ${workspace.file_path} as the synced repository root."""
    for _ in range(5):
        text = re.sub(r"\$\{var\.([A-Za-z_]+)\}", lambda m: str(variables[m.group(1)]), text)
    return text.replace("${workspace.file_path}", str(ROOT))


@pytest.fixture(scope="module")
def bundle() -> dict:
    return yaml.safe_load(BUNDLE.read_text())


def _variables(bundle: dict, target: str) -> dict[str, str]:
    values = {k: v.get("default") for k, v in bundle["variables"].items()}
    values.update(bundle["targets"][target].get("variables", {}))
    return values


(TRACKING_EXTRA,) = PYPROJECT["project"]["optional-dependencies"]["tracking"]


STREAM_JOB = "custseg_stream"  # the real-time job: one task, no run date (test_stream_job_is_continuous)


def _daily(bundle: dict) -> dict:
    return {k: v for k, v in bundle["resources"]["jobs"].items() if k != STREAM_JOB}


def test_bundle_jobs_have_one_wheel_task_per_stage_in_pipeline_order(bundle):
    jobs = _daily(bundle)
    assert set(jobs) == {"custseg_daily", "custseg_daily_serverless"}
    for name, job in jobs.items():
        tasks = job["tasks"]
        assert [t["task_key"] for t in tasks] == PIPELINE
        for prev, task in zip(tasks, tasks[1:], strict=False):
            assert task["depends_on"] == [{"task_key": prev["task_key"]}], task["task_key"]
        for task in tasks:
            wheel = task["python_wheel_task"]
            assert wheel["package_name"] == PYPROJECT["project"]["name"]
            assert wheel["entry_point"] == f"custseg-{task['task_key']}"
            resolve_entry_point(wheel["entry_point"])
            if name == "custseg_daily":
                # the wheel and its `tracking` extra (conf/databricks.yaml turns MLflow tracking on)
                assert task["libraries"] == [{"whl": "../../dist/*.whl"}, {"pypi": {"package": TRACKING_EXTRA}}]
                assert task["job_cluster_key"] in {c["job_cluster_key"] for c in job["job_clusters"]}
            else:  # serverless: the wheel is a dependency of the job's environment
                assert task["environment_key"] in {e["environment_key"] for e in job["environments"]}
                (env,) = job["environments"]
                assert env["spec"]["dependencies"] == ["../../dist/*.whl", TRACKING_EXTRA]
                assert "libraries" not in task and "job_cluster_key" not in task


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_bundle_tasks_load_an_existing_config_and_take_the_run_date(bundle, target):
    from custseg.config import load_config

    variables = _variables(bundle, target)
    for job in _daily(bundle).values():
        for task in job["tasks"]:
            params = task["python_wheel_task"]["parameters"]
            conf = Path(_resolve(params[params.index("--conf") + 1], variables))
            assert conf.is_file(), f"{task['task_key']}: {conf} does not exist"
            assert conf.parent == ROOT / "conf"
            assert params[params.index("--date") + 1] == "{{job.parameters.run_date}}"
            env = {"CUSTSEG_PII_SALT": "x"}
            loaded = load_config(conf, env=env)
            assert loaded.storage.engine == "spark-delta" and loaded.storage.catalog == "main"
        assert [p["name"] for p in job["parameters"]] == ["run_date"]
    env_vars = bundle["resources"]["jobs"]["custseg_daily"]["job_clusters"][0]["new_cluster"]["spark_env_vars"]
    # the salt comes from a secret scope
    assert env_vars["CUSTSEG_PII_SALT"].startswith("{{secrets/")


def test_bundle_builds_the_wheel_syncs_conf_and_schedules_daily(bundle):
    (artifact,) = bundle["artifacts"].values()
    assert artifact["type"] == "whl" and (BUNDLE.parent / artifact["path"]).resolve() == ROOT
    assert "../../conf" in bundle["sync"]["paths"]
    job = bundle["resources"]["jobs"]["custseg_daily"]
    cron = job["schedule"]["quartz_cron_expression"].split()
    assert len(cron) == 6 and cron[3:] == ["*", "*", "?"], "a daily Quartz schedule"
    assert set(bundle["targets"]) == {"dev", "prod"}
    assert bundle["targets"]["dev"]["mode"] == "development" and bundle["targets"]["prod"]["mode"] == "production"
    assert bundle["targets"]["prod"]["variables"]["schedule_pause"] == "UNPAUSED"


# --- EMR -------------------------------------------------------------------------------

STEP_FILES = ["steps.json", "steps-venv.json"]


@pytest.mark.parametrize("name", STEP_FILES)
def test_emr_steps_submit_every_stage_with_existing_scripts_and_configs(name):
    steps = json.loads((EMR / name).read_text())
    stages = []
    for step in steps:
        assert step["Jar"] == "command-runner.jar" and step["Type"] == "CUSTOM_JAR"
        assert step["ActionOnFailure"] in ("CANCEL_AND_WAIT", "CONTINUE", "TERMINATE_CLUSTER")
        args = step["Args"]
        assert args[0] == "spark-submit"
        assert args[args.index("--deploy-mode") + 1] == "cluster"
        script = next(a for a in args if a.endswith(".py"))
        assert script.startswith("${S3_PREFIX}/jobs/")
        stage = Path(script).stem
        stages.append(stage)
        assert (ROOT / "jobs" / f"{stage}.py").is_file(), f"{script} has no jobs/{stage}.py to upload"
        resolve_entry_point(f"custseg-{stage}")
        assert args[args.index("--py-files") + 1] == "${S3_PREFIX}/custseg-lib.zip"
        shipped = args[args.index("--files") + 1].split(",")
        app_args = args[args.index(script) + 1 :]
        conf = app_args[app_args.index("--conf") + 1]
        assert f"${{S3_PREFIX}}/conf/{conf}" in shipped, "the config named must travel with --files"
        for path in shipped:  # every shipped config exists, with the files its `extends` chain needs
            assert path.startswith("${S3_PREFIX}/conf/") and (ROOT / "conf" / Path(path).name).is_file()
        assert {"base.yaml", conf} <= {Path(p).name for p in shipped}
        assert app_args[app_args.index("--date") + 1] == "${RUN_DATE}"
        if name == "steps-venv.json":
            assert "spark.archives=${S3_PREFIX}/custseg-venv.tar.gz#environment" in args
    assert stages == PIPELINE


@pytest.mark.parametrize("name", STEP_FILES)
def test_emr_step_builds_every_stage_from_the_files_it_ships_alone(name, tmp_path, monkeypatch):
    """Each step's config loads from only what its --files lists (YARN puts them in the
    container's working folder), and everything a stage reads from it resolves: the repository's
    conf/ is not on the cluster, so the fallback to it is taken away here."""
    import custseg.config
    from custseg.basket.settings import BasketSettings
    from custseg.config import load_config
    from custseg.features.settings import FeatureSettings
    from custseg.marketing.campaigns import load_campaigns
    from custseg.recommend.settings import RecommendSettings
    from custseg.report import ReportSettings
    from custseg.segment.settings import SegmentSettings
    from custseg.sources.flat import FlatSettings
    from custseg.stages import get_stage

    nowhere = tmp_path / "no-repository-conf"
    nowhere.mkdir()
    # config.side_file is the one place a named side file (campaigns, triggers) falls back to conf/
    monkeypatch.setattr(custseg.config, "DEFAULT_CONF_DIR", nowhere)
    for step in json.loads((EMR / name).read_text()):
        args = step["Args"]
        script = next(a for a in args if a.endswith(".py"))
        stage = Path(script).stem
        container = tmp_path / f"{name}-{stage}"
        container.mkdir()
        for shipped in args[args.index("--files") + 1].split(","):
            (container / Path(shipped).name).write_bytes((ROOT / "conf" / Path(shipped).name).read_bytes())
        monkeypatch.chdir(container)
        app_args = args[args.index(script) + 1 :]
        conf = load_config(app_args[app_args.index("--conf") + 1], env={"CUSTSEG_PII_SALT": "x"})
        assert Path(conf.file).parent == container
        assert callable(get_stage(stage))
        for settings in (
            FeatureSettings,
            SegmentSettings,
            BasketSettings,
            RecommendSettings,
            ReportSettings,
            FlatSettings,
        ):
            settings.from_config(conf)
        assert load_campaigns(conf), f"{name} {stage}: no campaign loads from the shipped files"


def test_a_stage_that_cannot_import_fails_loudly(monkeypatch):
    """Never skipped: the pipeline keeps every stage, and a failing import names what is missing."""
    import builtins

    import custseg.stages as stages

    assert stages.pipeline_stages() == PIPELINE
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")
        return real_import(name, *args, **kwargs)

    for mod in [m for m in sys.modules if m.startswith(("custseg.stages.report", "custseg.report", "matplotlib"))]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(stages.StageImportError, match=r"stage 'report' cannot be imported.*custseg\[report\]"):
        stages.get_stage("report")
    assert stages.pipeline_stages() == PIPELINE


def test_emr_config_loads_with_spark_delta():
    from custseg.config import load_config

    conf = load_config(ROOT / "conf" / "emr.yaml", env={"CUSTSEG_PII_SALT": "x"})
    assert conf.storage.engine == "spark-delta" and conf.paths.tables.startswith("s3://")


def _locked() -> dict[str, str]:
    """name -> exact version from constraints.txt (the lock make installs)."""
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        m = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-")


def test_emr_bootstrap_pins_the_locked_core_and_report_dependencies():
    text = (EMR / "bootstrap-deps.sh").read_text()
    pinned = {p for p in re.findall(r'"([A-Za-z0-9_.-]+==[^"$]+)"', text) if not p.startswith("delta-spark")}
    locked = _locked()
    # the core, the report's matplotlib, and deltalake (the cluster brings Spark and Delta's jars)
    deps = [
        *PYPROJECT["project"]["dependencies"],
        *PYPROJECT["project"]["optional-dependencies"]["report"],
        "deltalake",
    ]
    assert pinned == {f"{_name(d)}=={locked[_name(d)]}" for d in deps}


def test_core_dependencies_are_ranges_and_the_runtime_packages_an_extra():
    """The wheel must not replace a runtime's own Spark or Delta: they sit in the `local` extra."""
    core = [_name(d) for d in PYPROJECT["project"]["dependencies"]]
    assert not {"pyspark", "delta-spark", "deltalake"} & set(core)
    assert all("==" not in d for d in PYPROJECT["project"]["dependencies"]), "core dependencies are ranges"
    assert {_name(d) for d in PYPROJECT["project"]["optional-dependencies"]["local"]} == {
        "pyspark",
        "delta-spark",
        "deltalake",
    }
    locked = _locked()
    extras = PYPROJECT["project"]["optional-dependencies"]
    for d in PYPROJECT["project"]["dependencies"] + [x for e in ("local", "report", "bench") for x in extras[e]]:
        assert _name(d) in locked, f"{d} has no exact version in constraints.txt"


def test_shell_scripts_parse():
    for script in [ROOT / "spark-submit.sh", ROOT / "deploy" / "package.sh", *sorted(EMR.glob("*.sh"))]:
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_package_sh_builds_a_reproducible_zip(tmp_path):
    run = lambda: subprocess.run(  # noqa: E731
        [str(ROOT / "deploy" / "package.sh"), "--no-wheel"],
        env={"DIST_DIR": str(tmp_path), "PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        text=True,
    )
    run()
    first = (tmp_path / "custseg-lib.zip").read_bytes()
    run()
    assert (tmp_path / "custseg-lib.zip").read_bytes() == first
    names = zipfile.ZipFile(tmp_path / "custseg-lib.zip").namelist()
    assert "custseg/entrypoints.py" in names and "custseg/cli.py" in names and "custseg/stages/report.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    lib = sorted(
        str(p.relative_to(ROOT / "lib"))
        for p in (ROOT / "lib" / "custseg").rglob("*.py")
        if "__pycache__" not in p.parts
    )
    assert sorted(n for n in names if n.endswith(".py")) == lib


# --- secrets stay masked in Spark's UI and event log ---------------------------------------

SECRET_KEYS = [
    "spark.yarn.appMasterEnv.CUSTSEG_PII_SALT",
    "spark.executorEnv.CUSTSEG_PII_SALT",
    "fs.azure.account.key.myacct.dfs.core.windows.net",
    "spark.hadoop.fs.azure.account.key.myacct.blob.core.windows.net",
    "fs.s3a.encryption.key",
    "spark.hadoop.fs.s3a.secret.key",
    "spark.hadoop.fs.s3a.access.key",
    "spark.datadog.api_key",
    "spark.hadoop.google.cloud.auth.service.account.json.keyfile.credentials",
]
NOT_SECRET_KEYS = ["spark.sql.shuffle.partitions", "spark.sql.session.timeZone", "spark.executor.memory"]


def test_redaction_regex_masks_every_secret_key():
    from custseg.redaction import SPARK_REDACTION_REGEX, is_secret_key

    for key in SECRET_KEYS:
        assert re.search(SPARK_REDACTION_REGEX, key), key
        assert is_secret_key(key), key
    for key in NOT_SECRET_KEYS:
        assert not re.search(SPARK_REDACTION_REGEX, key), key
    # Spark's own default misses the salt and the Azure / S3A encryption keys (why custseg sets its own)
    default = r"(?i)secret|password|token|access[.]?key"
    assert not re.search(default, "spark.yarn.appMasterEnv.CUSTSEG_PII_SALT")
    assert not re.search(default, "fs.azure.account.key.myacct.dfs.core.windows.net")


def test_every_deployment_sets_the_redaction_regex(bundle):
    from custseg.redaction import SPARK_REDACTION_REGEX

    emr = json.loads((EMR / "configurations.json").read_text())
    (defaults,) = [c["Properties"] for c in emr if c["Classification"] == "spark-defaults"]
    assert defaults["spark.redaction.regex"] == SPARK_REDACTION_REGEX
    assert not any("appMasterEnv" in k or "executorEnv" in k for k in defaults), "no salt in a file of the repo"
    job = bundle["resources"]["jobs"]["custseg_daily"]  # serverless compute redacts on its own
    cluster = job["job_clusters"][0]["new_cluster"]
    assert cluster["spark_conf"]["spark.redaction.regex"] == SPARK_REDACTION_REGEX
    assert f"--conf 'spark.redaction.regex={SPARK_REDACTION_REGEX}'" in (ROOT / "spark-submit.sh").read_text()
    for name in STEP_FILES:  # the salt is never a step argument
        assert "SALT" not in (EMR / name).read_text().upper()


def test_spark_submit_sh_keeps_spark_conf_apart_from_the_job_config(tmp_path):
    """`--conf k=v` is spark-submit's own setting; `--conf FILE` the job's config file."""
    bin_dir = tmp_path / "spark" / "bin"
    bin_dir.mkdir(parents=True)
    fake = bin_dir / "spark-submit"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    proc = subprocess.run(
        [str(ROOT / "spark-submit.sh"), "ingest", "--date", "2026-06-30", "--conf", "conf/cluster.yaml"]
        + ["--conf", "spark.executor.memory=2g", "--job-conf", "conf/local.yaml"],
        cwd=ROOT,
        env={**os.environ, "SPARK_HOME": str(tmp_path / "spark")},
        capture_output=True,
        text=True,
        check=True,
    )
    args = proc.stdout.splitlines()
    job = args.index(str(ROOT / "jobs" / "ingest.py"))
    spark_side, job_side = args[:job], args[job + 1 :]
    assert (
        "spark.executor.memory=2g" in spark_side
        and spark_side[spark_side.index("spark.executor.memory=2g") - 1] == "--conf"
    )
    assert job_side == ["--date", "2026-06-30", "--conf", "conf/cluster.yaml", "--conf", "conf/local.yaml"]


def _fake_submit(tmp_path, *extra, spark_version: str | None = None, env: dict[str, str] | None = None):
    """spark-submit.sh against a SPARK_HOME whose spark-submit prints its arguments, one a line;
    ``spark_version`` puts a spark-core jar of that version there (how the script tells the line)."""
    bin_dir = tmp_path / "spark" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    fake = bin_dir / "spark-submit"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    if spark_version:
        (tmp_path / "spark" / "jars").mkdir(exist_ok=True)
        (tmp_path / "spark" / "jars" / f"spark-core_2.13-{spark_version}.jar").write_bytes(b"")
    return subprocess.run(
        [str(ROOT / "spark-submit.sh"), "ingest", "--date", "2026-06-30", *extra],
        cwd=ROOT,
        env={**os.environ, "SPARK_HOME": str(tmp_path / "spark"), **(env or {})},
        capture_output=True,
        text=True,
    )


def _split(proc) -> tuple[list[str], list[str]]:
    """spark-submit's arguments and the job's, either side of jobs/<job>.py."""
    assert proc.returncode == 0, proc.stderr
    args = proc.stdout.splitlines()
    job = args.index(str(ROOT / "jobs" / "ingest.py"))
    return args[:job], args[job + 1 :]


def _option(args: list[str], name: str) -> list[str]:
    """Every value given to a spark-submit option (spark-submit keeps only the last of --jars & co.)."""
    return [args[i + 1] for i, a in enumerate(args) if a == name]


def _delta_pins(line: str) -> list[str]:
    text = (ROOT / "deploy" / "delta-jars.txt").read_text()
    return [f.split()[1] for f in text.splitlines() if f.split()[:1] == [line]]


def test_spark_submit_sh_conf_forms_never_shadow_each_other(tmp_path):
    """Every spelling of spark-submit's --conf k=v reaches spark-submit, and a config file
    (relative path, packaged name, --conf=FILE) reaches the job, never the other way round."""
    spark, job = _split(
        _fake_submit(
            tmp_path,
            "--conf=spark.executor.memory=2g",
            "--conf",
            "spark.hadoop.fs.s3a.endpoint=http://minio:9000",
            "--conf=conf/cluster.yaml",
            "--conf",
            "databricks.yaml",
            "--",
            "--conf",
            "spark.executor.cores=2",
            "--verbose",
        )
    )
    assert {"spark.executor.memory=2g", "spark.hadoop.fs.s3a.endpoint=http://minio:9000"} <= set(
        _option(spark, "--conf")
    )
    assert "spark.executor.cores=2" in _option(spark, "--conf") and "--verbose" in spark
    assert job == ["--date", "2026-06-30", "--conf", "conf/cluster.yaml", "--conf", "databricks.yaml"]
    missing = _fake_submit(tmp_path, "--venv")
    assert missing.returncode == 2 and "--venv needs a value" in missing.stderr


def test_spark_submit_sh_merges_the_users_jars_and_files_with_its_own(tmp_path):
    """spark-submit keeps only the last --jars / --py-files / --files / --archives: the user's
    are merged into the script's single one, so neither the Delta jars nor lib/ nor conf/ drop."""
    archive = tmp_path / "env.tar.gz"
    archive.write_bytes(b"x")
    proc = _fake_submit(
        tmp_path,
        "--jars",
        "/opt/extra/postgres.jar",
        "--py-files",
        "/opt/extra/helpers.zip",
        "--files",
        "/etc/custseg/secret-free.yaml",
        "--archives",
        "/opt/extra/models.zip#models",
        "--venv",
        str(archive),
        "--delta",
        "--conf",
        "conf/cluster.yaml",
        spark_version="4.0.1",
    )
    spark, job = _split(proc)
    for name in ("--jars", "--py-files", "--files", "--archives"):
        assert len(_option(spark, name)) <= 1, f"{name} given twice: spark-submit would keep only the last"
    assert _option(spark, "--jars") == ["/opt/extra/postgres.jar"]
    (py_files,) = _option(spark, "--py-files")
    assert py_files.split(",") == ["/opt/extra/helpers.zip", str(ROOT / "dist" / "custseg-lib.zip")]
    (files,) = _option(spark, "--files")
    assert files.split(",")[0] == "/etc/custseg/secret-free.yaml" and str(ROOT / "conf" / "cluster.yaml") in files
    (archives,) = _option(spark, "--archives")
    assert archives.split(",") == ["/opt/extra/models.zip#models", f"{archive}#environment"]
    assert job[-2:] == ["--conf", "conf/cluster.yaml"]


def test_spark_submit_sh_delta_fetches_the_jars_pinned_for_the_submitting_spark(tmp_path):
    """--delta on a Spark line the project's resolved jars are not for (here 4.0 against .venv's
    4.2): the coordinates pinned for that line go as --packages, with Delta's settings, and the
    job must use JVM Delta (storage.engine=spark-delta) instead of falling back to delta-rs."""
    spark, job = _split(_fake_submit(tmp_path, "--delta", spark_version="4.0.1"))
    assert _option(spark, "--packages") == [",".join(_delta_pins("4.0"))]
    assert not _option(spark, "--jars"), "the 4.2 jars of .venv must not go to a Spark 4.0"
    confs = _option(spark, "--conf")
    assert "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension" in confs
    assert "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog" in confs
    assert job[:2] == ["--set", "storage.engine=spark-delta"]
    # without --delta: nothing of Delta, the job's engine left to the config, and a note why
    plain = _fake_submit(tmp_path, spark_version="4.0.1")
    spark, job = _split(plain)
    assert not _option(spark, "--packages") and not _option(spark, "--jars") and "--set" not in job
    assert not any("DeltaSparkSessionExtension" in c for c in _option(spark, "--conf"))
    assert "no Delta jars for Spark 4.0" in plain.stderr and "delta-rs" in plain.stderr
    # a Spark line with no pinned jars: --delta refuses to guess
    (tmp_path / "spark" / "jars" / "spark-core_2.13-4.0.1.jar").unlink()
    unpinned = _fake_submit(tmp_path, "--delta", spark_version="3.5.3")
    assert unpinned.returncode == 2 and "pins no Delta jars for Spark 3.5" in unpinned.stderr


def test_spark_submit_sh_delta_on_a_spark_that_has_delta_adds_only_the_settings(tmp_path):
    spark, job = _split(_fake_submit(tmp_path, "--delta", spark_version="4.2.0", env={"CUSTSEG_DELTA_JARS": "none"}))
    assert not _option(spark, "--jars") and not _option(spark, "--packages")
    assert "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension" in _option(spark, "--conf")
    assert job[:2] == ["--set", "storage.engine=spark-delta"]


def test_spark_submit_sh_delta_ships_the_resolved_jars_of_the_same_spark_line(tmp_path):
    import pyspark

    resolved = ROOT / ".venv" / "delta-jars"
    pins = _delta_pins(".".join(pyspark.__version__.split(".")[:2]))
    wanted = [resolved / f"{c.split(':')[1]}-{c.split(':')[2]}.jar" for c in pins]
    if not all(j.is_file() for j in wanted):
        pytest.skip(f"make venv did not resolve the Delta jars into {resolved}")
    spark, _ = _split(_fake_submit(tmp_path, "--delta", spark_version=pyspark.__version__))
    assert _option(spark, "--jars") == [",".join(str(j) for j in wanted)]
    assert not _option(spark, "--packages")


def test_spark_submit_sh_venv_ships_the_packed_environment(tmp_path):
    archive = tmp_path / "custseg-venv.tar.gz"
    archive.write_bytes(b"not really a tarball; the fake spark-submit only prints its arguments")
    client = _fake_submit(tmp_path, "--venv", str(archive), "--master", "spark://127.0.0.1:7077")
    assert client.returncode == 0, client.stderr
    args = client.stdout.splitlines()
    assert args[args.index("--archives") + 1] == f"{archive}#environment"
    assert "spark.pyspark.python=./environment/bin/python" in args
    assert any(a.startswith("spark.pyspark.driver.python=") and "environment" not in a for a in args)
    cluster = _fake_submit(tmp_path, "--venv", str(archive), "--deploy-mode", "cluster").stdout.splitlines()
    assert "spark.pyspark.python=./environment/bin/python" in cluster
    assert not any(a.startswith("spark.pyspark.driver.python=") for a in cluster), (
        "cluster mode: the driver unpacks it too"
    )
    missing = _fake_submit(tmp_path, "--venv", str(tmp_path / "missing.tar.gz"))
    assert missing.returncode == 2 and "no such archive" in missing.stderr
    # the client-mode driver takes PYSPARK_DRIVER_PYTHON before PYSPARK_PYTHON (as Spark does)
    driver = _fake_submit(
        tmp_path,
        "--venv",
        str(archive),
        env={"PYSPARK_PYTHON": "/nowhere/python3", "PYSPARK_DRIVER_PYTHON": sys.executable},
    ).stdout.splitlines()
    assert f"spark.pyspark.driver.python={sys.executable}" in driver


def test_stream_job_is_continuous_and_runs_custseg_stream(bundle):
    from custseg.realtime.job import parse_args

    job = bundle["resources"]["jobs"][STREAM_JOB]
    assert "continuous" in job and "schedule" not in job and job["max_concurrent_runs"] == 1
    (task,) = job["tasks"]
    wheel = task["python_wheel_task"]
    assert wheel["entry_point"] == "custseg-stream"
    resolve_entry_point("custseg-stream")
    assert task["job_cluster_key"] in {c["job_cluster_key"] for c in job["job_clusters"]}
    args = parse_args(wheel["parameters"])
    assert args.trigger == "processing:10s" and args.checkpoint.startswith("/Volumes/")
    # the same cluster (and so the salt from the secret scope) as the daily job
    daily = bundle["resources"]["jobs"]["custseg_daily"]["job_clusters"][0]["new_cluster"]
    assert job["job_clusters"][0]["new_cluster"] == daily
