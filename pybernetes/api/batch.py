"""batch/v1: jobs and cronjobs (plus the cron schedule parser the CronJob controller uses)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ..machinery import errors
from ..machinery.errors import FieldError
from ..machinery.printing import age, get_path, human_duration, parse_time, since
from .apps import (CONTAINERS_COLUMN, IMAGES_COLUMN, GoValue, container_cells, default_template,
                   format_selector, go_label_selector, go_string_map, immutable, name_of,
                   non_negative, selector_column, selector_matches, set_default, spec_of,
                   validate_pod_template)
from .strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_JOB_NAME_LABEL = "job-name"
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
MAX_INT32 = 2**31 - 1
JOB_RESTART_POLICIES = ("OnFailure", "Never")


# ----- cron schedules --------------------------------------------------------------
class CronError(ValueError):
    """A schedule robfig/cron's standard parser would refuse (message worded like it)."""


_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_NAMES = (None, None, None,
          {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
          {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())})
_DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                "@hourly": "0 * * * *"}


@dataclass(frozen=True)
class CronSchedule:
    """Allowed values per field; `dom_star`/`dow_star` keep cron's OR rule for days."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    dom_star: bool
    dow_star: bool

    def matches(self, t: dt.datetime) -> bool:
        if t.minute not in self.minutes or t.hour not in self.hours or t.month not in self.months:
            return False
        dom, dow = t.day in self.days, (t.isoweekday() % 7) in self.weekdays
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def next_after(self, t: dt.datetime) -> dt.datetime | None:
        """The first matching minute strictly after `t` (None if none within 5 years)."""
        t = t.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        end = t + dt.timedelta(days=366 * 5)
        while t < end:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
                continue
            if not self._day_ok(t):
                t = t.replace(hour=0, minute=0) + dt.timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0) + dt.timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t += dt.timedelta(minutes=1)
                continue
            return t
        return None

    def _day_ok(self, t: dt.datetime) -> bool:
        dom, dow = t.day in self.days, (t.isoweekday() % 7) in self.weekdays
        return (dom and dow) if (self.dom_star or self.dow_star) else (dom or dow)


def _parse_number(text: str, field: int) -> int:
    names = _NAMES[field]
    if names and text.lower() in names:
        return names[text.lower()]
    try:
        n = int(text)
        if n < 0 or not text.isdigit():
            raise ValueError
        return n
    except ValueError:
        raise CronError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": '
                        "invalid syntax") from None


def _parse_range(expr: str, field: int) -> set[int]:
    lo_b, hi_b = _BOUNDS[field]
    step_parts = expr.split("/")
    if len(step_parts) > 2:
        raise CronError(f"too many slashes: {expr}")
    rng = step_parts[0]
    if rng in ("*", "?"):
        lo, hi = lo_b, hi_b
    else:
        bounds = rng.split("-")
        if len(bounds) > 2:
            raise CronError(f"too many hyphens: {expr}")
        lo = _parse_number(bounds[0], field)
        hi = _parse_number(bounds[1], field) if len(bounds) == 2 else lo
    step = 1
    if len(step_parts) == 2:
        step = _parse_number(step_parts[1], field)
        if len(rng.split("-")) == 1 and rng not in ("*", "?"):
            hi = hi_b  # "N/step" means N through the end
    if lo < lo_b:
        raise CronError(f"beginning of range ({lo}) below minimum ({lo_b}): {expr}")
    if hi > hi_b:
        raise CronError(f"end of range ({hi}) above maximum ({hi_b}): {expr}")
    if lo > hi:
        raise CronError(f"beginning of range ({lo}) beyond end of range ({hi}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return set(range(lo, hi + 1, step))


def _parse_field(text: str, field: int) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        out |= _parse_range(part, field)
    if field == 4 and 7 in out:
        out.discard(7)
        out.add(0)
    return frozenset(out)


def parse_cron(schedule: str) -> CronSchedule:
    """Parse a standard 5-field cron spec or a descriptor (@daily, @every 1h is refused
    by this minute-granular parser only when it is not a whole number of minutes)."""
    text = schedule.strip()
    if text.startswith("TZ=") or text.startswith("CRON_TZ="):
        text = text.split(None, 1)[1] if " " in text else ""
    if text.startswith("@"):
        if text in _DESCRIPTORS:
            text = _DESCRIPTORS[text]
        elif text.startswith("@every "):
            return _parse_every(text[len("@every "):])
        else:
            raise CronError(f"unrecognized descriptor: {text}")
    fields = text.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    sets = [_parse_field(f, i) for i, f in enumerate(fields)]
    return CronSchedule(*sets, dom_star=fields[2] in ("*", "?") or fields[2].startswith("*"),
                        dow_star=fields[4] in ("*", "?") or fields[4].startswith("*"))


def _parse_every(text: str) -> CronSchedule:
    import re
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not m or not text:
        raise CronError(f"failed to parse duration @every {text}: time: invalid duration "
                        f'"{text}"')
    minutes = int(m.group(1) or 0) * 60 + int(m.group(2) or 0)
    step = max(minutes, 1)
    every_min = frozenset(range(0, 60, step)) if step < 60 else frozenset({0})
    every_hour = frozenset(range(0, 24, max(step // 60, 1)))
    return CronSchedule(every_min, every_hour, frozenset(range(1, 32)), frozenset(range(1, 13)),
                        frozenset(range(0, 7)), True, True)


def validate_schedule(schedule: Any, path: str) -> list[FieldError]:
    if not schedule:
        return [errors.required(path, "")]
    out: list[FieldError] = []
    try:
        parse_cron(schedule)
    except CronError as e:
        out.append(errors.invalid_value(path, schedule, str(e)))
    if "TZ" in schedule:
        out.append(errors.invalid_value(path, schedule, "cannot use TZ or CRON_TZ in schedule, "
                                        "use timeZone field instead"))
    return out


def validate_time_zone(tz: Any, path: str) -> list[FieldError]:
    if tz is None:
        return []
    import zoneinfo
    if tz == "" or tz.lower() == "local":
        return [errors.invalid_value(path, tz, f"unknown time zone {tz}")]
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return [errors.invalid_value(path, tz, f"unknown time zone {tz}")]
    return []


# ----- Job -------------------------------------------------------------------------
def generate_job_selector(job: dict) -> None:
    """Label the template with the job's name and uid and select on the uid (upstream's
    generateSelector): done on create unless spec.manualSelector is true."""
    md, spec = job["metadata"], spec_of(job)
    template = spec.setdefault("template", {})
    tmd = template.setdefault("metadata", {})
    labels = tmd.get("labels")
    if not isinstance(labels, dict):
        labels = tmd["labels"] = {}
    for key in (LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL):
        labels.setdefault(key, md.get("name", ""))
    for key in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
        labels.setdefault(key, md.get("uid", ""))
    sel = spec.get("selector")
    if not isinstance(sel, dict):
        sel = spec["selector"] = {}
    ml = sel.get("matchLabels")
    if not isinstance(ml, dict):
        ml = sel["matchLabels"] = {}
    ml.setdefault(CONTROLLER_UID_LABEL, md.get("uid", ""))


def default_job_spec(spec: dict) -> None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    set_default(spec, "parallelism", 1)
    set_default(spec, "backoffLimit", MAX_INT32 if spec.get("backoffLimitPerIndex") is not None else 6)
    set_default(spec, "completionMode", "NonIndexed")
    set_default(spec, "suspend", False)
    pfp = spec.get("podFailurePolicy")
    if isinstance(pfp, dict):
        for rule in pfp.get("rules") or []:
            for cond in rule.get("onPodConditions") or []:
                set_default(cond, "status", "True")
    set_default(spec, "podReplacementPolicy",
                "Failed" if isinstance(pfp, dict) else "TerminatingOrFailed")
    default_template(spec.get("template"))


def validate_job_spec(spec: dict, path: str, check_selector: bool = True) -> list[FieldError]:
    out: list[FieldError] = []
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                "ttlSecondsAfterFinished", "backoffLimitPerIndex", "maxFailedIndexes"):
        out += non_negative(spec, key, f"{path}.{key}")
    ads = spec.get("activeDeadlineSeconds")
    if isinstance(ads, int) and ads == 0:
        out.append(errors.invalid_value(f"{path}.activeDeadlineSeconds", ads,
                                        "must be greater than 0"))
    mode = spec.get("completionMode")
    if mode is not None and mode not in ("NonIndexed", "Indexed"):
        out.append(errors.not_supported(f"{path}.completionMode", mode, ["NonIndexed", "Indexed"]))
    if mode == "Indexed" and spec.get("completions") is None:
        out.append(errors.required(f"{path}.completions", "when completion mode is Indexed"))
    prp = spec.get("podReplacementPolicy")
    if prp is not None and prp not in ("TerminatingOrFailed", "Failed"):
        out.append(errors.not_supported(f"{path}.podReplacementPolicy", prp,
                                        ["Failed", "TerminatingOrFailed"]))
    sel = spec.get("selector")
    if check_selector:
        if sel is None:
            out.append(errors.required(f"{path}.selector", ""))
        else:
            from ..machinery.selectors import validate_label_selector
            out += validate_label_selector(sel, f"{path}.selector")
    template = spec.get("template")
    out += validate_pod_template(template, f"{path}.template", JOB_RESTART_POLICIES)
    if check_selector and isinstance(sel, dict) and isinstance(template, dict):
        labels = get_path(template, "metadata", "labels") or {}
        if (sel.get("matchLabels") or sel.get("matchExpressions")) and \
                not selector_matches(sel, labels):
            out.append(errors.invalid_value(f"{path}.template.metadata.labels",
                                            GoValue(go_string_map(labels)),
                                            "`selector` does not match template `labels`"))
    return out


def validate_generated_selector(job: dict) -> list[FieldError]:
    """With an auto-generated selector the template must carry this job's uid labels."""
    spec = job.get("spec") or {}
    if spec.get("manualSelector"):
        return []
    uid = job.get("metadata", {}).get("uid", "")
    if not uid:
        return []
    labels = get_path(spec, "template", "metadata", "labels") or {}
    out: list[FieldError] = []
    for key in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
        if key in labels and labels[key] != uid:
            out.append(errors.invalid_value("spec.template.metadata.labels",
                                            GoValue(go_string_map(labels)),
                                            f"`{key}` must match uid"))
    sel = spec.get("selector")
    if isinstance(sel, dict):
        ml = sel.get("matchLabels") or {}
        if ml.get(CONTROLLER_UID_LABEL) != uid and ml.get(LEGACY_CONTROLLER_UID_LABEL) != uid:
            out.append(errors.invalid_value("spec.selector", go_label_selector(sel),
                                            "`selector` not auto-generated"))
    return out


def job_condition(job: dict, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in get_path(job, "status", "conditions", default=[]) or [])


def job_status_text(job: dict) -> str:
    """The STATUS column of `kubectl get jobs` (1.30+ printer)."""
    if job_condition(job, "Complete"):
        return "Complete"
    if job_condition(job, "Failed"):
        return "Failed"
    if job.get("metadata", {}).get("deletionTimestamp"):
        return "Terminating"
    for kind in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if job_condition(job, kind):
            return kind
    return "Running"


def job_completions_text(job: dict) -> str:
    spec, succeeded = job.get("spec") or {}, get_path(job, "status", "succeeded", default=0)
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    parallelism = spec.get("parallelism") or 0
    if parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def job_duration_text(job: dict) -> str:
    start = parse_time(get_path(job, "status", "startTime", default="") or "")
    if start is None:
        return ""
    end = parse_time(get_path(job, "status", "completionTime", default="") or "")
    if end is None:
        end = dt.datetime.now(dt.timezone.utc)
    return human_duration(max((end - start).total_seconds(), 0))


class JobStrategy(Strategy):
    group, version = "batch", "v1"
    kind, plural = "Job", "jobs"
    categories = ("all",)
    subresources = ("status",)
    tracks_generation = True
    columns = (NAME_COLUMN,
               Column("Status", "string", "", "Status of the job."),
               Column("Completions", "string", "", "The completion status of the job"),
               Column("Duration", "string", "", "Time required to complete the job."),
               AGE_COLUMN, CONTAINERS_COLUMN, IMAGES_COLUMN,
               selector_column("A label query over pods that should match the pod count. Normally, "
                               "the system sets this field for you. More info: https://kubernetes."
                               "io/docs/concepts/overview/working-with-objects/labels/"
                               "#label-selectors"))

    def prepare_for_create(self, obj: dict) -> None:
        super().prepare_for_create(obj)
        spec = spec_of(obj)
        self._labels_from_template(obj)
        if not spec.get("manualSelector"):
            generate_job_selector(obj)

    @staticmethod
    def _labels_from_template(obj: dict) -> None:
        tlabels = get_path(obj, "spec", "template", "metadata", "labels")
        md = obj["metadata"]
        if isinstance(tlabels, dict) and not md.get("labels"):
            md["labels"] = dict(tlabels)

    def initial_status(self, obj: dict) -> dict | None:
        return {}

    def default(self, obj: dict) -> None:
        self._labels_from_template(obj)
        default_job_spec(spec_of(obj))

    def validate(self, obj: dict) -> list[FieldError]:
        return validate_job_spec(obj.get("spec") or {}, "spec") + validate_generated_selector(obj)

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        out = self.validate(obj)
        new_spec, old_spec = obj.get("spec") or {}, old.get("spec") or {}
        if new_spec.get("selector") != old_spec.get("selector"):
            out.append(errors.invalid_value("spec.selector", go_label_selector(new_spec.get("selector")),
                                            "field is immutable"))
        if new_spec.get("completionMode") != old_spec.get("completionMode"):
            out.append(immutable("spec.completionMode", new_spec.get("completionMode")))
        if new_spec.get("completions") != old_spec.get("completions") and not (
                new_spec.get("completionMode") == "Indexed" and
                new_spec.get("completions") == new_spec.get("parallelism")):
            out.append(immutable("spec.completions", new_spec.get("completions")))
        if new_spec.get("template") != old_spec.get("template") and not self._template_mutable(old):
            out.append(errors.invalid_value("spec.template", GoValue("core.PodTemplateSpec{...}"),
                                            "field is immutable"))
        return out

    @staticmethod
    def _template_mutable(old: dict) -> bool:
        """Upstream lets a suspended job that never started change scheduling directives."""
        return bool(get_path(old, "spec", "suspend")) and \
            not get_path(old, "status", "startTime")

    def table_row(self, obj: dict) -> list[Any]:
        spec = obj.get("spec") or {}
        return [name_of(obj), job_status_text(obj), job_completions_text(obj),
                job_duration_text(obj), age(obj), *container_cells(spec.get("template")),
                format_selector(spec.get("selector"))]

    def field_labels(self, obj: dict) -> dict[str, str]:
        labels = super().field_labels(obj)
        labels["status.successful"] = str(get_path(obj, "status", "succeeded", default=0))
        return labels


# ----- CronJob ---------------------------------------------------------------------
class CronJobStrategy(Strategy):
    group, version = "batch", "v1"
    kind, plural = "CronJob", "cronjobs"
    short_names = ("cj",)
    categories = ("all",)
    subresources = ("status",)
    tracks_generation = True
    columns = (NAME_COLUMN,
               Column("Schedule", "string", "", "The schedule in Cron format, see "
                      "https://en.wikipedia.org/wiki/Cron."),
               Column("Timezone", "string", "", "The time zone name for the given schedule, see "
                      "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
               Column("Suspend", "boolean", "", "This flag tells the controller to suspend "
                      "subsequent executions, it does not apply to already started executions. "
                      "Defaults to false."),
               Column("Active", "integer", "", "A list of pointers to currently running jobs."),
               Column("Last Schedule", "string", "", "Information when was the last time the job "
                      "was successfully scheduled."),
               AGE_COLUMN, CONTAINERS_COLUMN, IMAGES_COLUMN,
               selector_column("A label query over pods that should match the pod count. Normally, "
                               "the system sets this field for you. More info: https://kubernetes."
                               "io/docs/concepts/overview/working-with-objects/labels/"
                               "#label-selectors"))

    def default(self, obj: dict) -> None:
        spec = spec_of(obj)
        set_default(spec, "concurrencyPolicy", "Allow")
        set_default(spec, "suspend", False)
        set_default(spec, "successfulJobsHistoryLimit", 3)
        set_default(spec, "failedJobsHistoryLimit", 1)
        default_template(get_path(spec, "jobTemplate", "spec", "template"))

    def initial_status(self, obj: dict) -> dict | None:
        return {}

    def validate(self, obj: dict) -> list[FieldError]:
        spec = obj.get("spec") or {}
        name = obj.get("metadata", {}).get("name", "")
        out: list[FieldError] = []
        if len(name) > 52:
            out.append(errors.invalid_value("metadata.name", name,
                                            "must be no more than 52 characters"))
        out += validate_schedule(spec.get("schedule"), "spec.schedule")
        out += validate_time_zone(spec.get("timeZone"), "spec.timeZone")
        cp = spec.get("concurrencyPolicy")
        if cp not in ("Allow", "Forbid", "Replace"):
            out.append(errors.not_supported("spec.concurrencyPolicy", cp,
                                            ["Allow", "Forbid", "Replace"]))
        for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit",
                    "failedJobsHistoryLimit"):
            out += non_negative(spec, key, f"spec.{key}")
        job_spec = get_path(spec, "jobTemplate", "spec")
        if not isinstance(job_spec, dict):
            out.append(errors.required("spec.jobTemplate.spec.template", ""))
        else:
            sel = job_spec.get("selector")
            out += validate_job_spec(job_spec, "spec.jobTemplate.spec",
                                     check_selector=bool(job_spec.get("manualSelector")) or sel is not None)
        return out

    def table_row(self, obj: dict) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        last = status.get("lastScheduleTime")
        suspend = spec.get("suspend")
        suspend_txt = "<unset>" if suspend is None else ("True" if suspend else "False")
        job_spec = get_path(spec, "jobTemplate", "spec", default={}) or {}
        return [name_of(obj), spec.get("schedule", ""), spec.get("timeZone") or "<none>",
                suspend_txt, len(status.get("active") or []), since(last) if last else "<none>",
                age(obj), *container_cells(job_spec.get("template")),
                format_selector(job_spec.get("selector"))]


STRATEGIES = [CronJobStrategy(), JobStrategy()]
