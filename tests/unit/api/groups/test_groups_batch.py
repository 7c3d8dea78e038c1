import datetime as dt

import pytest

from pybernetes.api.batch import (CONTROLLER_UID_LABEL, CronError, CronJobStrategy, JobStrategy,
                                  parse_cron)

from group_helpers import column_names, create, messages, pod_template, update

JOB = {"metadata": {"name": "pi"}, "spec": {"template": pod_template({"app": "pi"}, "Never")}}


def test_job_defaults_and_generated_selector():
    s = JobStrategy()
    obj, errs = create(s, JOB)
    assert errs == []
    uid, spec = obj["metadata"]["uid"], obj["spec"]
    assert spec["completions"] == 1 and spec["parallelism"] == 1
    assert spec["backoffLimit"] == 6 and spec["completionMode"] == "NonIndexed"
    assert spec["suspend"] is False and spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert "manualSelector" not in spec
    assert spec["selector"] == {"matchLabels": {CONTROLLER_UID_LABEL: uid}}
    assert spec["template"]["metadata"]["labels"] == {
        "app": "pi", "job-name": "pi", "batch.kubernetes.io/job-name": "pi",
        "controller-uid": uid, "batch.kubernetes.io/controller-uid": uid}
    assert obj["metadata"]["labels"]["app"] == "pi"
    assert obj["status"] == {}


def test_job_parallelism_only_and_per_index_backoff():
    obj, _ = create(JobStrategy(), {**JOB, "spec": {**JOB["spec"], "parallelism": 3}})
    assert obj["spec"]["parallelism"] == 3 and "completions" not in obj["spec"]
    obj, _ = create(JobStrategy(), {**JOB, "spec": {**JOB["spec"], "completions": 2,
                                                    "completionMode": "Indexed",
                                                    "backoffLimitPerIndex": 1}})
    assert obj["spec"]["backoffLimit"] == 2**31 - 1
    obj, _ = create(JobStrategy(), {**JOB, "spec": {**JOB["spec"], "podFailurePolicy": {
        "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}})
    assert obj["spec"]["podReplacementPolicy"] == "Failed"
    assert obj["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"] == "True"


def test_job_restart_policy_always_is_refused():
    _, errs = create(JobStrategy(), {**JOB, "spec": {"template": pod_template({"a": "b"})}})
    assert messages(errs) == ['spec.template.spec.restartPolicy: Unsupported value: "Always": '
                              'supported values: "OnFailure", "Never"']


def test_job_manual_selector_must_match():
    spec = {"manualSelector": True, "selector": {"matchLabels": {"app": "other"}},
            "template": pod_template({"app": "pi"}, "Never")}
    _, errs = create(JobStrategy(), {**JOB, "spec": spec})
    assert [e.field for e in errs] == ["spec.template.metadata.labels"]
    spec.pop("selector")
    _, errs = create(JobStrategy(), {**JOB, "spec": spec})
    assert messages(errs) == ["spec.selector: Required value"]


def test_job_indexed_needs_completions_and_immutables():
    s = JobStrategy()
    _, errs = create(s, {**JOB, "spec": {**JOB["spec"], "completionMode": "Indexed",
                                         "parallelism": 2}})
    assert "spec.completions: Required value: when completion mode is Indexed" in messages(errs)
    old, _ = create(s, JOB)
    new = {**old, "spec": {**old["spec"], "completions": 5,
                           "template": pod_template({**old["spec"]["template"]["metadata"]["labels"]}, "OnFailure")}}
    fields = [e.field for e in update(s, new, old)[1]]
    assert fields == ["spec.completions", "spec.template"]
    # a suspended job that never started may change its template
    sus = {**old, "spec": {**old["spec"], "suspend": True}}
    new2 = {**sus, "spec": {**new["spec"], "completions": 1, "suspend": True}}
    assert update(s, new2, sus)[1] == []


def test_job_table_and_field_labels():
    s = JobStrategy()
    obj, _ = create(s, JOB)
    assert column_names(s) == ["Name", "Status", "Completions", "Duration", "Age", "Containers",
                               "Images", "Selector"]
    row = s.table_row(obj)
    assert row[:4] == ["pi", "Running", "0/1", ""]
    obj["status"] = {"succeeded": 1, "startTime": "2024-01-01T00:00:00Z",
                     "completionTime": "2024-01-01T00:00:42Z",
                     "conditions": [{"type": "Complete", "status": "True"}]}
    assert s.table_row(obj)[1:4] == ["Complete", "1/1", "42s"]
    assert s.field_labels(obj)["status.successful"] == "1"
    obj["spec"] = {**obj["spec"], "completions": None, "parallelism": 3}
    obj["spec"].pop("completions")
    assert s.table_row(obj)[2] == "1/1 of 3"
    obj["status"]["conditions"] = [{"type": "Suspended", "status": "True"}]
    assert s.table_row(obj)[1] == "Suspended"


CRON = {"metadata": {"name": "tick"}, "spec": {"schedule": "*/5 * * * *", "jobTemplate": {
    "spec": {"template": pod_template({"app": "t"}, "OnFailure")}}}}


def test_cronjob_defaults_and_table():
    s = CronJobStrategy()
    obj, errs = create(s, CRON)
    assert errs == []
    spec = obj["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"], spec["successfulJobsHistoryLimit"],
            spec["failedJobsHistoryLimit"]) == ("Allow", False, 3, 1)
    assert "backoffLimit" not in spec["jobTemplate"]["spec"]
    assert column_names(s)[:7] == ["Name", "Schedule", "Timezone", "Suspend", "Active",
                                   "Last Schedule", "Age"]
    assert s.table_row(obj)[:6] == ["tick", "*/5 * * * *", "<none>", "False", 0, "<none>"]
    assert s.short_names == ("cj",) and s.categories == ("all",)


def test_cronjob_validation():
    s = CronJobStrategy()
    bad = {**CRON, "spec": {**CRON["spec"], "schedule": "61 * * * *", "timeZone": "Mars/Base",
                            "concurrencyPolicy": "Sometimes"}}
    msgs = messages(create(s, bad)[1])
    assert 'spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61' \
        in msgs
    assert 'spec.timeZone: Invalid value: "Mars/Base": unknown time zone Mars/Base' in msgs
    assert 'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", ' \
           '"Forbid", "Replace"' in msgs
    tz = {**CRON, "spec": {**CRON["spec"], "schedule": "TZ=UTC 0 * * * *"}}
    assert any("cannot use TZ or CRON_TZ" in m for m in messages(create(s, tz)[1]))
    long = {**CRON, "metadata": {"name": "x" * 53}}
    assert any(m.startswith("metadata.name") for m in messages(create(s, long)[1]))
    ok = {**CRON, "spec": {**CRON["spec"], "timeZone": "Europe/Berlin", "schedule": "@daily"}}
    assert create(s, ok)[1] == []


def test_cron_parser_next_times():
    t0 = dt.datetime(2024, 1, 1, 10, 7)
    assert parse_cron("*/15 * * * *").next_after(t0) == dt.datetime(2024, 1, 1, 10, 15)
    assert parse_cron("0 9 * * mon-fri").next_after(dt.datetime(2024, 1, 6, 12, 0)) == \
        dt.datetime(2024, 1, 8, 9, 0)  # Saturday -> Monday
    assert parse_cron("@monthly").next_after(t0) == dt.datetime(2024, 2, 1, 0, 0)
    # day-of-month OR day-of-week when both are restricted
    both = parse_cron("0 0 13 * 5")
    assert both.next_after(dt.datetime(2024, 1, 1)) == dt.datetime(2024, 1, 5)
    for bad in ("* * * *", "a * * * *", "5-1 * * * *", "@sometimes"):
        with pytest.raises(CronError):
            parse_cron(bad)
