"""The label job's SQL builders (flink_jobs/label_sql.py), checked as strings, without Flink."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest

from adapters.local.jobs import LABEL_JOB, label_job_args
from app.contracts.examples import Example
from app.config import Settings
from flink_jobs import label_sql as L

CFG = L.LabelJobConfig(
    bootstrap="broker:9092", events_topic="p.events.v1", examples_topic="p.examples.v1", metrics_topic="p.metrics.v1",
    attribution_window_ms=45_500, transactional_id_prefix="p.labels", count_window_seconds=20,
)  # fmt: skip


def _flat(sql: str) -> str:
    return " ".join(sql.split())


def _columns(ddl: str) -> list[str]:
    return re.findall(r"^\s*`(\w+)` [A-Z]", ddl, flags=re.M)


@pytest.mark.parametrize(
    ("ms", "sql"),
    [
        (0, "INTERVAL '0 00:00:00.000' DAY TO SECOND(3)"),
        (30_000, "INTERVAL '0 00:00:30.000' DAY TO SECOND(3)"),
        (600_000, "INTERVAL '0 00:10:00.000' DAY TO SECOND(3)"),  # past SECOND(2)'s 99 s
        (86_400_000 + 3_723_004, "INTERVAL '1 01:02:03.004' DAY TO SECOND(3)"),
    ],
)
def test_interval_is_exact_at_any_size(ms, sql):
    assert L.interval(ms) == sql


@pytest.mark.parametrize("ms", [-1, 100 * 86_400_000])
def test_interval_rejects_what_flink_cannot_spell(ms):
    with pytest.raises(ValueError):
        L.interval(ms)


def test_dedup_is_row_number_on_event_time_keeping_the_first():
    sql = _flat(L.dedup_view())
    assert "ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY `rowtime` ASC) AS rn FROM label_input" in sql
    assert sql.endswith("WHERE rn = 1")


def test_events_behind_the_watermark_are_split_off_before_the_dedup():
    keep, behind = (_flat(v) for v in L.split_views())
    cond = L.behind_condition()
    assert "CURRENT_WATERMARK(`rowtime`) IS NOT NULL" in cond and "`rowtime` < CURRENT_WATERMARK(`rowtime`)" in cond
    assert keep.startswith("CREATE TEMPORARY VIEW label_input") and keep.endswith(f"WHERE NOT {cond}")
    assert behind.startswith("CREATE TEMPORARY VIEW behind_events") and behind.endswith(f"WHERE {cond}")
    assert "FROM valid_events" in keep and "FROM valid_events" in behind


def test_sides_split_impressions_from_clicks_and_purchases():
    imps, answers = (_flat(v) for v in L.side_views())
    assert imps.endswith("FROM unique_events WHERE event_type = 'impression'")
    assert answers.endswith("FROM unique_events WHERE event_type IN ('click', 'purchase')")
    assert "impression_id" in answers and "impression_id" not in imps


def test_join_is_a_left_interval_join_on_the_attribution_window():
    sql = _flat(L.labelled_view(CFG))
    assert "FROM impressions i LEFT JOIN answers a ON a.impression_id = i.event_id" in sql
    assert f"a.`rowtime` BETWEEN i.`rowtime` AND i.`rowtime` + {L.interval(45_500)}" in sql


def test_unmatched_answers_mirror_the_join():
    sql = _flat(L.unmatched_view(CFG))
    assert "FROM answers a LEFT JOIN impressions i ON i.event_id = a.impression_id" in sql
    assert f"i.`rowtime` BETWEEN a.`rowtime` - {L.interval(45_500)} AND a.`rowtime`" in sql
    assert sql.endswith("WHERE i.event_id IS NULL")


def test_examples_sink_has_the_example_contract_fields_keyed_by_user_and_exactly_once():
    ddl = L.examples_sink_ddl(CFG)
    example_fields = {f.name for f in fields(Example)} - {"context"}  # no stream context computed here
    assert set(_columns(ddl)) == example_fields
    flat = _flat(ddl)
    for opt in ("'topic' = 'p.examples.v1'", "'key.fields' = 'user_id'", "'key.format' = 'raw'",
                "'value.fields-include' = 'ALL'", "'sink.delivery-guarantee' = 'exactly-once'",
                "'sink.transactional-id-prefix' = 'p.labels-examples'", "'properties.bootstrap.servers' = 'broker:9092'"):  # fmt: skip
        assert opt in flat, opt


def test_examples_insert_collapses_each_impression_once_with_its_label_and_time():
    sql = _flat(L.examples_insert(CFG))
    assert f"FROM TABLE(TUMBLE(TABLE labelled, DESCRIPTOR(`rowtime`), {L.COLLAPSE_WINDOW}))" in sql
    assert "GROUP BY window_start, window_end, event_id," in sql
    assert "CASE WHEN COUNT(answer_id) > 0 THEN 1 ELSE 0 END" in sql
    assert "COALESCE(MIN(answer_time), event_time + 45500)" in sql
    # one select expression per sink column, in order
    select = sql.split("SELECT ", 1)[1].split(" FROM TABLE", 1)[0]
    depth, parts, cur = 0, [], ""
    for ch in select:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    assert len(parts) == len(_columns(L.examples_sink_ddl(CFG)))
    assert parts[: len(L._IMPRESSION_KEYS)] == list(L._IMPRESSION_KEYS)


def test_late_labels_are_counted_per_window_into_metrics():
    ddl, sql = _flat(L.late_labels_sink_ddl(CFG)), _flat(L.late_labels_insert(CFG))
    assert "'connector' = 'upsert-kafka'" in ddl and "'topic' = 'p.metrics.v1'" in ddl
    assert "PRIMARY KEY (`k`) NOT ENFORCED" in ddl and "'sink.transactional-id-prefix' = 'p.labels-late-labels'" in ddl
    assert "SELECT 'no_impression_in_window' AS reason, event_type, event_time - MOD(event_time, 20000) AS ws FROM unmatched_answers" in sql
    assert "SELECT 'behind_watermark' AS reason, event_type, event_time - MOD(event_time, 20000) AS ws FROM behind_events" in sql
    assert "CONCAT('late_labels|', reason, '|', event_type, '|', CAST(ws AS STRING))" in sql
    assert "ws + 20000, COUNT(*)" in sql and sql.endswith("GROUP BY reason, event_type, ws")
    assert f"/*+ STATE_TTL('late' = '{CFG.count_ttl_ms} ms') */" in sql and ") AS late GROUP BY" in sql


def test_every_view_is_defined_before_it_is_used():
    ddl = [_flat(d) for d in L.all_ddl(CFG)]
    defined: list[str] = []
    for stmt in ddl:
        name = re.match(r"CREATE (?:TEMPORARY VIEW|TABLE) (\w+)", stmt).group(1)
        for used in re.findall(r"\bFROM (\w+)|\bJOIN (\w+)", stmt):
            ref = next(u for u in used if u)
            assert ref in defined, f"{name} uses {ref} before it is defined"
        defined.append(name)
    assert defined[:3] == ["events_raw", "parsed", "valid_events"]
    assert "'topic' = 'p.events.v1'" in ddl[0]
    for stmt in (L.examples_insert(CFG), L.late_labels_insert(CFG)):
        for ref in re.findall(r"\b(?:FROM|TABLE|INSERT INTO) (\w+)", _flat(stmt)):
            assert ref in defined or ref in ("TABLE", "TUMBLE"), ref


def test_label_job_args_name_real_options_with_the_settings_values():
    s = Settings(topic_prefix="t1.", attribution_window_ms=12_000, window_seconds=5, kafka_port=19999)
    args = label_job_args(s)
    opts = dict(zip(args[::2], args[1::2]))
    known = {f"--{f.name.replace('_', '-')}": f for f in fields(L.LabelJobConfig)}
    assert set(opts) <= set(known)
    defaults = L.LabelJobConfig()
    for flag, value in opts.items():  # each parses as label_job.parse_args will (type of the default)
        type(getattr(defaults, known[flag].name))(value)
    assert opts["--attribution-window-ms"] == "12000" and opts["--count-window-seconds"] == "5"
    assert opts["--events-topic"] == "t1.events.v1" and opts["--examples-topic"] == "t1.examples.v1"
    assert opts["--metrics-topic"] == "t1.metrics.v1" and opts["--bootstrap"] == "localhost:19999"
    # per prefix: two deployments (or tests) never share a consumer group or transactional ids
    assert opts["--group-id"] == opts["--transactional-id-prefix"] == "t1.tributary-labels"
    assert LABEL_JOB == "tributary-labels" and Settings().attribution_window_ms == 30_000
