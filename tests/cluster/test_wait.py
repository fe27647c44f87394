"""Waiting for jobs is bounded: a job that leaves the queue without a result is reported as lost
(the case of a cluster without accounting, where `sacct` cannot tell what happened)."""

from __future__ import annotations

import time
from types import SimpleNamespace

from otdata.cluster import jobs


def fake_job(tmp_path, job_id: str):
    folder = tmp_path / job_id
    folder.mkdir()
    paths = SimpleNamespace(result_pickle=folder / "result.pkl", stderr=folder / "log.err")
    (folder / "log.err").write_text("loading ...\nslurmstepd: error: *** JOB CANCELLED ***\n")
    return SimpleNamespace(job_id=job_id, paths=paths)


def test_a_job_gone_from_the_queue_without_a_result_is_lost_after_the_bound(tmp_path, monkeypatch):
    job = fake_job(tmp_path, "7_0")
    calls = []
    monkeypatch.setattr(jobs, "queue_states",
                        lambda ids: calls.append(ids) or ({"7_0": "RUNNING"} if len(calls) < 3 else {}))
    start = time.monotonic()
    [outcome] = jobs.wait([job], slurm=True, lost_after_s=0.3, poll_s=0.05)
    assert 0.3 <= time.monotonic() - start < 5
    assert outcome.status == "lost"
    assert "left the queue 0 s ago without a result" in outcome.error
    assert outcome.error.endswith("its log ends: slurmstepd: error: *** JOB CANCELLED ***")


def test_a_job_that_ended_in_the_queue_without_a_result_reports_its_state(tmp_path, monkeypatch):
    job = fake_job(tmp_path, "8_1")
    monkeypatch.setattr(jobs, "queue_states", lambda ids: {"8_1": "OUT_OF_MEMORY"})
    monkeypatch.setattr(jobs.time, "monotonic", iter(range(0, 1000, 20)).__next__)  # 20 s a look
    monkeypatch.setattr(jobs.time, "sleep", lambda s: None)
    [outcome] = jobs.wait([job], slurm=True, lost_after_s=600, poll_s=1)
    assert outcome.status == "out_of_memory"
    assert outcome.error.startswith("SLURM ended it as OUT_OF_MEMORY without a result")


def test_a_job_pending_for_a_reason_that_never_clears_is_cancelled_and_reported(tmp_path, monkeypatch):
    job = fake_job(tmp_path, "9")
    cancelled = []
    monkeypatch.setattr(jobs, "queue_states", lambda ids: {"9": "PENDING PartitionConfig"})
    monkeypatch.setattr(jobs, "cancel", lambda ids: cancelled.extend(ids) or "cancelled")
    monkeypatch.setattr(jobs.time, "monotonic", iter(range(0, 1000, 5)).__next__)
    monkeypatch.setattr(jobs.time, "sleep", lambda s: None)
    [outcome] = jobs.wait([job], slurm=True, lost_after_s=600, poll_s=1)
    assert cancelled == ["9"] and outcome.status == "never_started"
    assert "pended with reason PartitionConfig" in outcome.error


def test_pending_for_resources_is_waited_for(tmp_path, monkeypatch):
    job = fake_job(tmp_path, "10")
    looks = iter([{"10": "PENDING Resources"}] * 50 + [{"10": "RUNNING"}])

    def states(ids):
        state = next(looks)
        if state["10"] == "RUNNING":
            job.paths.result_pickle.write_bytes(b"")   # the job finished
        return state

    monkeypatch.setattr(jobs, "queue_states", states)
    monkeypatch.setattr(jobs, "_collect", lambda i, j: jobs.Outcome(i, j.job_id, "ok"))
    monkeypatch.setattr(jobs.time, "monotonic", iter(range(0, 10000, 5)).__next__)
    monkeypatch.setattr(jobs.time, "sleep", lambda s: None)
    assert jobs.wait([job], slurm=True, lost_after_s=600, poll_s=1)[0].status == "ok"
