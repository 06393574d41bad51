"""The Databricks asset bundle deploys: every job, schema and volume of every target loads
through the typed models of the ``databricks-bundles`` package (a wrong key or enum fails),
and the bundle-level settings keep to what the platform accepts."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "deploy" / "databricks" / "databricks.yml"

# Bundle-level `permissions` take only these levels (a job's own ACL also knows CAN_MANAGE_RUN
# and IS_OWNER, the bundle's top level does not).
BUNDLE_PERMISSION_LEVELS = {"CAN_MANAGE", "CAN_VIEW", "CAN_RUN"}
STAGES = ("ingest", "conform", "features", "segment", "basket", "marketing", "report")


def _doc() -> dict:
    return yaml.safe_load(BUNDLE.read_text())


def _merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return copy.deepcopy(over)


def resolved(target: str) -> dict:
    """The bundle as ``target`` sees it: target overrides merged, ``${var.x}`` substituted.

    Other references (``${workspace...}``, ``${resources...}``, ``{{job...}}``) stay as text:
    the CLI fills them at deploy or run time, and the models accept them as strings.
    """
    doc = _doc()
    tgt = doc["targets"][target] or {}
    values = {name: spec.get("default") for name, spec in doc.get("variables", {}).items()}
    values.update(tgt.get("variables", {}))
    merged = _merge(
        {k: v for k, v in doc.items() if k != "targets"}, {k: v for k, v in tgt.items() if k != "variables"}
    )

    def sub(node):
        if isinstance(node, dict):
            return {k: sub(v) for k, v in node.items()}
        if isinstance(node, list):
            return [sub(v) for v in node]
        if isinstance(node, str):
            whole = re.fullmatch(r"\$\{var\.([A-Za-z0-9_]+)\}", node)
            if whole:  # a whole-value reference keeps the variable's type (int, list)
                assert whole.group(1) in values, f"undeclared variable {whole.group(1)}"
                return sub(values[whole.group(1)])
            for name in re.findall(r"\$\{var\.([A-Za-z0-9_]+)\}", node):
                assert name in values, f"undeclared variable {name}"
                node = node.replace(f"${{var.{name}}}", str(values[name]))
        return node

    return sub(merged)


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_every_resource_loads_through_the_typed_models(target):
    from databricks.bundles.jobs import Job
    from databricks.bundles.schemas import Schema
    from databricks.bundles.volumes import Volume

    res = resolved(target)["resources"]
    jobs = {name: Job.from_dict(spec) for name, spec in res["jobs"].items()}
    schemas = {name: Schema.from_dict(spec) for name, spec in res["schemas"].items()}
    volumes = {name: Volume.from_dict(spec) for name, spec in res["volumes"].items()}
    assert set(jobs) == {"custseg_daily", "custseg_daily_serverless", "custseg_stream"}
    assert set(schemas) == {"bronze", "silver", "gold"} and len(volumes) == 1
    stream = jobs.pop("custseg_stream")  # the real-time job: one task, continuous, no run date
    assert stream.continuous and [t.task_key for t in stream.tasks] == ["stream"]
    assert stream.tasks[0].python_wheel_task.entry_point == "custseg-stream"
    for job in jobs.values():
        assert [t.task_key for t in job.tasks] == list(STAGES)
        assert job.timeout_seconds and int(job.timeout_seconds) > 0
        for task in job.tasks:
            params = list(task.python_wheel_task.parameters)
            assert task.python_wheel_task.entry_point == f"custseg-{task.task_key}"
            assert params[params.index("--run-id") + 1] == "{{job.run_id}}"
            assert "{{job.parameters.run_date}}" in params
            assert not any("secrets/" in p for p in params), "a secret value must never be a task parameter"


def test_serverless_variant_carries_the_wheel_in_its_environment():
    from databricks.bundles.jobs import Job

    job = Job.from_dict(resolved("dev")["resources"]["jobs"]["custseg_daily_serverless"])
    assert not job.job_clusters
    (env,) = job.environments
    assert "../../dist/*.whl" in env.spec.dependencies and env.spec.environment_version
    for task in job.tasks:
        assert task.environment_key == env.environment_key
        assert not task.job_cluster_key and not task.new_cluster and not task.libraries
        params = list(task.python_wheel_task.parameters)
        assert params[params.index("--secret") + 1] == "CUSTSEG_PII_SALT=custseg/pii_salt"
        paths = [p for p in params if p.startswith("paths.")]
        assert {p.split("=", 1)[0] for p in paths} == {"paths.landing", "paths.exports", "paths.reports"}
        assert all("/Volumes/dev/${resources.schemas.bronze.name}/${resources.volumes.files.name}/" in p for p in paths)


def test_job_cluster_variant_reads_the_salt_from_the_secret_scope():
    from databricks.bundles.jobs import Job

    job = Job.from_dict(resolved("prod")["resources"]["jobs"]["custseg_daily"])
    (cluster,) = job.job_clusters
    env = cluster.new_cluster.spark_env_vars
    assert env["CUSTSEG_PII_SALT"] == "{{secrets/custseg/pii_salt}}"
    assert str(cluster.new_cluster.data_security_mode.value) == "SINGLE_USER"


def test_prod_runs_as_a_principal_with_a_timeout_and_failure_mail():
    from databricks.bundles.jobs import Job, JobRunAs

    doc = _doc()
    assert doc["targets"]["prod"]["mode"] == "production"
    assert "run_as" not in doc, "only prod pins run_as; dev runs as the developer"
    prod = resolved("prod")
    run_as = JobRunAs.from_dict(doc["targets"]["prod"]["run_as"])
    assert run_as.service_principal_name and not run_as.user_name and not run_as.group_name
    for name, spec in prod["resources"]["jobs"].items():
        job = Job.from_dict(spec)
        assert job.email_notifications.on_failure, "prod tells someone when a run fails"
        if name != "custseg_stream":  # a continuous job runs until stopped
            assert int(job.timeout_seconds) > 0
    levels = [p["level"] for p in prod["permissions"]]
    assert levels and set(levels) <= BUNDLE_PERMISSION_LEVELS, levels
    assert prod["resources"]["jobs"]["custseg_daily"]["schedule"]["pause_status"] == "UNPAUSED"


def test_dev_schemas_are_per_user():
    from databricks.bundles.schemas import Schema

    for target, want in (("dev", "custseg_${workspace.current_user.short_name}_"), ("prod", "custseg_")):
        schemas = resolved(target)["resources"]["schemas"]
        for layer, spec in schemas.items():
            assert Schema.from_dict(spec).name == f"{want}{layer}"
    dev_job = resolved("dev")["resources"]["jobs"]["custseg_daily"]["tasks"][0]["python_wheel_task"]["parameters"]
    assert "storage.schema_prefix=custseg_${workspace.current_user.short_name}_" in dev_job


def test_the_model_check_catches_a_wrong_enum_and_a_wrong_key():
    """The typed models are strict: the checks above can fail."""
    from databricks.bundles.jobs import Job

    job = resolved("prod")["resources"]["jobs"]["custseg_daily"]
    bad_enum = copy.deepcopy(job)
    bad_enum["tasks"][-1]["run_if"] = "ALWAYS"
    with pytest.raises(ValueError, match="RunIf"):
        Job.from_dict(bad_enum)
    bad_key = copy.deepcopy(job)
    bad_key["tasks"][0]["python_wheel_task"]["params"] = []
    with pytest.raises(ValueError, match="params"):
        Job.from_dict(bad_key)
    bad_level = copy.deepcopy(job)
    bad_level["permissions"] = [{"group_name": "g", "level": "CAN_RUN"}]  # a bundle level, not a job level
    with pytest.raises(ValueError, match="JobPermissionLevel"):
        Job.from_dict(bad_level)


def test_job_arguments_of_the_bundle_parse():
    """The parameters the tasks pass are accepted by the jobs' own argument parser."""
    from custseg.cli import parse_job_args

    for target in ("dev", "prod"):
        for name, spec in resolved(target)["resources"]["jobs"].items():
            if name == "custseg_stream":  # custseg stream's own parser: tests/unit/test_deploy.py
                continue
            for task in spec["tasks"]:
                args = parse_job_args(
                    task["task_key"],
                    [
                        p.replace("{{job.parameters.run_date}}", "2026-06-30")
                        for p in task["python_wheel_task"]["parameters"]
                    ],
                )
                assert args.external_run_id == "{{job.run_id}}" and args.date == "2026-06-30"
