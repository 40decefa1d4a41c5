"""The Train button fits the user's time: the estimate, the time budget and the schedule planned within it."""

import dataclasses
import json
import time

import numpy as np
import pytest

from core.evaluation import per_user_metric
import core.training as training
from core.training import loop, plan, validation
from core.training import TrainConfig
from core.training.loop import train_sequence_model

from neural_data import TINY_TRAINING as TINY


def test_estimate_times_steps_and_plans_the_epochs_that_fit_the_budget(rule_data):
    data, split = rule_data
    config = TrainConfig(model="gru", **{**TINY, "epochs": 50, "time_budget": 0})
    unlimited = plan.estimate_training(data, split, config)
    assert unlimited.step_s > 0 and unlimited.validation_s > 0 and unlimited.steps_per_epoch == 5
    assert unlimited.planned_epochs == 50 and unlimited.budget_s is None
    assert unlimited.at_most_s == pytest.approx(50 * unlimited.epoch_s)
    budget_min = (10 * unlimited.epoch_s + unlimited.after_s) / 60 / training.TRAINING_SHARE  # ten epochs and more
    planned = unlimited.planned_for(dataclasses.replace(config, time_budget=budget_min), training.torch.device("cpu"))
    assert planned.budget_s == pytest.approx(60 * budget_min)
    kept = max(planned.after_s, (1 - training.TRAINING_SHARE) * planned.budget_s)  # the re-ranker and the test
    assert planned.training_s(planned.budget_s) == pytest.approx(planned.budget_s - kept)
    assert planned.planned_epochs == int((planned.budget_s - kept) // planned.epoch_s) >= 10
    assert "budget fits" in planned.describe() and "per epoch on CPU" in planned.describe()
    assert "kept for the re-ranker and the test" in planned.describe()
    slow_to_evaluate = dataclasses.replace(planned, validation_s=planned.budget_s / plan.AFTER_TRAINING_PASSES / 2)
    assert slow_to_evaluate.training_s(planned.budget_s) == pytest.approx(planned.budget_s / 2)  # half is kept


def test_budget_defaults_to_ten_minutes_on_a_cpu_and_none_on_a_gpu():
    cpu, gpu = training.torch.device("cpu"), training.torch.device("cuda")
    assert training.budget_seconds(TrainConfig(), cpu) == 600
    assert training.budget_seconds(TrainConfig(), gpu) is None
    assert training.budget_seconds(TrainConfig(time_budget=2.5), gpu) == 150
    assert training.budget_seconds(TrainConfig(time_budget=0), cpu) is None
    with pytest.raises(ValueError, match="time budget"):
        training.budget_seconds(TrainConfig(time_budget=-1), cpu)


def test_a_budget_that_binds_cuts_the_run_short_and_says_so(rule_data, monkeypatch):
    data, split = rule_data
    train_epoch = loop._train_epoch

    def slow_epoch(*args, **kwargs):  # as on a slow machine: every epoch takes at least 0.3 s
        time.sleep(0.3)
        return train_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "_train_epoch", slow_epoch)
    config = TrainConfig(model="gru", **{**TINY, "epochs": 30, "patience": 30, "time_budget": 0.02})  # 1.2 s
    result = train_sequence_model(data, split, config)
    assert 1 <= len(result.history) <= result.planned_epochs <= 4  # planned again from the first epoch's time
    assert result.budget_cut and result.stopped_by == "time budget"
    assert result.estimate.epoch_s >= 0.3 and result.estimate.budget_s == pytest.approx(1.2)
    unlimited = train_sequence_model(data, split, dataclasses.replace(config, epochs=2, time_budget=0))
    assert not unlimited.budget_cut and unlimited.stopped_by == "epochs" and len(unlimited.history) == 2


def test_a_plan_made_after_some_epochs_counts_the_epochs_that_fit_in_the_time_left():
    estimate = plan.TrainingEstimate("CPU", step_s=0.1, steps_per_epoch=10, validation_s=1.0, max_epochs=50,
                                         planned_epochs=4, budget_s=600.0)
    assert estimate.replanned_after(3, 20.0).planned_epochs == 13  # 2 s an epoch: ten more
    assert estimate.replanned_after(3, 20.0).total_steps == 130
    assert estimate.replanned_after(3, 1e6).planned_epochs == 50  # never past the configured epochs
    assert estimate.replanned_after(3, -5.0).planned_epochs == 3  # overdue: no more epochs


def test_epochs_that_run_faster_than_the_first_are_given_the_time_left(rule_data, monkeypatch):
    """A machine busy during the first epoch and idle afterwards: the plan made from the first epoch's
    time (3 of 8 epochs fit) grows again once the epochs run faster, before the learning rate decays."""
    data, split = rule_data
    plans, train_epoch = [], loop._train_epoch

    def first_epoch_slow(*args):
        plans.append(args[8].total_steps)  # the schedule the epoch was planned with
        if args[6] == 1:  # the epoch number
            time.sleep(3.0)
        return train_epoch(*args)

    monkeypatch.setattr(loop, "_train_epoch", first_epoch_slow)
    config = TrainConfig(model="gru", **{**TINY, "epochs": 8, "patience": 30, "time_budget": 0.2})  # 12 s
    result = train_sequence_model(data, split, config, after=plan.Afterwards(seconds=0.0, passes=0.0))
    steps_per_epoch = result.estimate.steps_per_epoch
    assert min(plans) <= 3 * steps_per_epoch < 8 * steps_per_epoch == plans[-1]
    assert len(result.history) == 8 and result.stopped_by == "epochs" and not result.budget_cut


def test_a_deadline_stops_an_epoch_between_steps(rule_data, monkeypatch):
    data, split = rule_data
    config = TrainConfig(model="gru", **{**TINY, "batch_size": 4, "epochs": 3, "time_budget": 1e-6})
    result = train_sequence_model(data, split, config)
    assert len(result.history) == 1 and result.budget_cut and result.best_epoch == 1


def _clock(validation_s: float, retime) -> "plan.Clock":
    estimate = plan.TrainingEstimate("CPU", step_s=0.1, steps_per_epoch=10_000, validation_s=validation_s,
                                         max_epochs=1, planned_epochs=1, budget_s=1000.0, after_fixed_s=10.0)
    return plan.Clock(time.perf_counter(), 1000.0, 0.0, estimate, retime)


def test_a_slower_validation_pass_timed_during_the_steps_brings_the_steps_deadline_forward():
    """The pass timed before training took 12 s and 16-28 s at the end of a 25M epoch: the steps must stop
    early enough for the pass as it is then, and for the passes after training."""
    timings = []
    clock = _clock(50.0, lambda: timings.append("timed") or 80.0)
    first_end = clock.steps_end
    assert not clock.steps_overdue(clock.started + 0.4 * (first_end - clock.started)) and timings == []
    assert not clock.steps_overdue(clock.started + 0.5 * (first_end - clock.started)) and timings == ["timed"]
    assert clock.estimate.validation_s == 80.0
    # the epoch's pass and AFTER_TRAINING_PASSES passes after training, each 30 s longer
    assert first_end - clock.steps_end == pytest.approx(30.0 * (1 + plan.AFTER_TRAINING_PASSES))
    clock.steps_overdue(clock.started + 0.99 * (clock.steps_end - clock.started))  # the later shares at once
    assert timings == ["timed", "timed"] and clock.retimes == []
    assert clock.steps_overdue(clock.steps_end + 1e-3)


def test_a_faster_validation_pass_keeps_the_plan():
    clock = _clock(30.0, lambda: 5.0)
    end = clock.steps_end
    clock.steps_overdue(clock.started + 0.9 * (end - clock.started))
    assert clock.estimate.validation_s == 30.0 and clock.steps_end == end


def test_a_budget_cut_epoch_stops_when_its_retimed_validation_no_longer_fits(rule_data, monkeypatch):
    """A pass re-timed (here at the first step) as longer than what is left ends the epoch's steps there."""
    data, split = rule_data
    calls = []
    monkeypatch.setattr(plan, "RETIME_AT", (0.0,))

    def never_fits(model, split, config, cancel=None):
        calls.append(model.training)
        return 0.01 if len(calls) == 1 else 1e6  # the estimate before training, then the steps' re-timing
    for module in (plan, loop):  # the estimate's timing, and the clock's re-timing in the loop
        monkeypatch.setattr(module, "timed_validation", never_fits)
    config = TrainConfig(model="gru", **{**TINY, "batch_size": 4, "epochs": 3, "time_budget": 100.0})
    result = train_sequence_model(data, split, config)
    # a 100 min budget would fit every epoch: only the re-timed pass stopped the first one
    assert len(calls) == 2 and len(result.history) == 1 and result.budget_cut


def test_patience_counts_epochs_that_gain_less_than_the_validation_noise():
    few = np.array([0, 50, 0, 3, 200, 1, 0, 9] * 10)  # 80 users: their NDCG@10 is noisy
    many = np.tile(few, 100)
    assert validation.validation_noise(few) > validation.validation_noise(many) > 0
    assert validation.validation_noise(few) == pytest.approx(
        validation.NOISE_SHARE * np.std(per_user_metric(few, "ndcg@10"), ddof=1) / np.sqrt(80))


def test_the_learning_rate_warms_up_holds_and_decays_over_the_last_fifth_of_the_plan():
    schedule = loop._Schedule(TrainConfig(lr=1.0, warmup_steps=10), total_steps=100)
    assert schedule.lr(0) == pytest.approx(0.1) and schedule.lr(9) == pytest.approx(1.0)
    assert schedule.lr(50) == pytest.approx(1.0) and schedule.lr(80) == pytest.approx(1.0)
    assert schedule.lr(90) == pytest.approx(0.55) and schedule.lr(100) == pytest.approx(loop.LR_FLOOR)


def test_when_not_even_an_epoch_fits_the_plan_is_the_steps_that_do():
    cpu = training.torch.device("cpu")
    measured = plan.TrainingEstimate("CPU", step_s=1.0, steps_per_epoch=1000, validation_s=10.0, max_epochs=0,
                                         planned_epochs=0, budget_s=None)
    config = TrainConfig(time_budget=10)  # 600 s, of which 60 s are kept for what follows the epochs
    fresh = measured.planned_for(config, cpu, before_s=0.0)
    assert fresh.planned_epochs == 1 and fresh.total_steps == 600 - 60 - 10  # the epoch's validation pass too
    late = measured.planned_for(config, cpu, before_s=100.0)  # reading the log took 100 s of the budget
    assert late.total_steps == 430 and late.before_s == 100.0
    assert "430 of the first epoch's 1,000 steps" in late.describe() and "1 min 40 s of it spent reading" in late.describe()
    assert late.planned_for(config, cpu).total_steps == 430  # planned again (the first epoch's timing): as recorded
    schedule = loop._Schedule(config, late.total_steps)
    assert schedule.lr(430) == pytest.approx(loop.LR_FLOOR * config.lr)  # decayed before the budget ends
    roomy = measured.planned_for(dataclasses.replace(config, time_budget=60), cpu)
    assert roomy.planned_epochs == 3 and roomy.total_steps == 3000
    assert measured.planned_for(dataclasses.replace(config, time_budget=0), cpu).total_steps == 200 * 1000


def test_the_budget_counts_from_when_the_run_was_asked_for(rule_data):
    data, split = rule_data
    config = TrainConfig(model="gru", **{**TINY, "epochs": 3, "time_budget": 0.05})  # 3 s
    asked = time.perf_counter() - 3.0  # reading the log took the whole budget
    result = train_sequence_model(data, split, config, started=asked)
    assert result.estimate.before_s >= 3.0 and result.estimate.total_steps == 1
    assert result.budget_cut and len(result.history) == 1
    assert not train_sequence_model(data, split, config).budget_cut  # counted from now, the 3 epochs fit


def test_what_follows_the_epochs_is_kept_out_of_their_time_as_the_caller_measured_it():
    cpu = training.torch.device("cpu")
    measured = plan.TrainingEstimate("CPU", step_s=0.1, steps_per_epoch=100_000, validation_s=20.0, max_epochs=0,
                                         planned_epochs=0, budget_s=None, after_fixed_s=30.0, after_passes=2.5)
    assert measured.after_s == 30.0 + 2.5 * 20.0
    planned = measured.planned_for(TrainConfig(), cpu, before_s=15.0)  # the 10 min budget
    assert planned.after_s == 80.0 and planned.training_s(600.0) == 520.0
    assert planned.total_steps == int((520.0 - 15.0 - 20.0) / 0.1)  # the last validation pass is kept too
    restored = plan.TrainingEstimate.from_json(json.loads(json.dumps(planned.to_json())))
    assert restored.after_s == planned.after_s  # a resumed run keeps what it measured


def test_the_steps_stop_in_time_for_the_epochs_validation_and_what_follows(rule_data, monkeypatch):
    data, split = rule_data
    config = TrainConfig(model="gru", **{**TINY, "epochs": 1, "time_budget": 10})
    timed = plan.TrainingEstimate("CPU", step_s=0.001, steps_per_epoch=5, validation_s=50.0, max_epochs=0,
                                      planned_epochs=0, budget_s=None)
    monkeypatch.setattr(loop, "timed_estimate", lambda *args: timed)
    deadlines, train_epoch = [], loop._train_epoch

    def recording(*args):
        deadlines.append(args[11].steps_end)  # the clock
        return train_epoch(*args)

    monkeypatch.setattr(loop, "_train_epoch", recording)
    asked = time.perf_counter()
    result = train_sequence_model(data, split, config, started=asked, after=plan.Afterwards(seconds=7.0, passes=3.0))
    assert (result.estimate.after_fixed_s, result.estimate.after_passes) == (7.0, 3.0)
    kept = 7.0 + 3.0 * 50.0  # what follows the epochs, over the budget's tenth
    assert deadlines == [pytest.approx(asked + 600.0 - kept - 50.0)]  # and the epoch's validation pass


def test_a_budget_cut_epoch_replans_its_decay_from_its_own_step_rate():
    schedule = loop._Schedule(TrainConfig(lr=1.0, warmup_steps=1), total_steps=1000)
    # 200 steps in, steps take 0.2 s instead of the planned 0.1 s: 100 s left hold 500 more, not 800.
    assert schedule.replanned(200, 0.2, 100.0, last_step=5000) == 700
    assert schedule.replanned(200, 0.05, 100.0, last_step=5000) == 2200  # faster: more steps fit
    assert schedule.replanned(200, 0.05, 1e6, last_step=5000) == 4999  # never past the epoch
    assert schedule.replanned(200, 0.2, -5.0, last_step=5000) == 201  # overdue: decayed by the next step
    whole = loop._Schedule(TrainConfig(), total_steps=5000)
    assert whole.replanned(200, 0.2, 100.0, last_step=5000) == 5000  # the plan holds whole epochs: unchanged


def test_the_loop_replans_the_decay_of_a_budget_cut_epoch(rule_data, monkeypatch):
    """The timed steps said two of the epoch's five fit; the real ones run far faster, so the decay is
    stretched to the epoch's last step instead of ending after the second."""
    data, split = rule_data
    config = TrainConfig(model="gru", **{**TINY, "epochs": 1, "time_budget": 10})
    timed = plan.TrainingEstimate("CPU", step_s=200.0, steps_per_epoch=5, validation_s=1.0, max_epochs=0,
                                      planned_epochs=0, budget_s=None)
    monkeypatch.setattr(loop, "timed_estimate", lambda *args: timed)
    monkeypatch.setattr(loop, "REPLAN_EVERY", 1)
    schedules, train_epoch = [], loop._train_epoch

    def recording(*args):
        schedules.append((args[8].total_steps, args[8]))  # the schedule as planned, and as the epoch left it
        return train_epoch(*args)

    monkeypatch.setattr(loop, "_train_epoch", recording)
    train_sequence_model(data, split, config, after=plan.Afterwards(seconds=0.0, passes=0.0))
    (planned, schedule), = schedules
    assert planned == 2 and schedule.total_steps == 4


def test_the_estimate_times_the_epochs_whole_end_in_real_size_batches(rule_data, monkeypatch):
    """The steps' deadline keeps room for the epoch's end: the estimate's validation time is what re-clustering
    the interests took (once an epoch) and ranking a sample in the real pass's batches took (a fake clock),
    scaled to every user."""
    data, split = rule_data
    data = dataclasses.replace(data, item_category=np.zeros_like(data.item_category))  # learned interests:
    assert not data.has_categories  # every epoch re-clusters them
    clock, batches = [0.0], []
    fake_clock = type("FakeClock", (), {"perf_counter": staticmethod(lambda: clock[0])})
    for module in (plan, validation):  # the timed steps and interests, the timed validation pass
        monkeypatch.setattr(module, "time", fake_clock)
    recluster, rank = validation.recluster_interests, validation.ranks_for

    def slow_recluster(*args):
        clock[0] += 7.0
        return recluster(*args)

    def slow_ranks(scorer, histories, targets, **options):
        clock[0] += 0.01 * len(targets)
        batches.append(options["batch_size"])
        return rank(scorer, histories, targets, **options)

    monkeypatch.setattr(validation, "recluster_interests", slow_recluster)
    monkeypatch.setattr(validation, "ranks_for", slow_ranks)
    monkeypatch.setattr(validation, "VALIDATION_SAMPLE", 100)
    estimate = plan.estimate_training(data, split, TrainConfig(model="gru", **TINY))
    assert batches == [validation.VALIDATION_BATCH]
    assert estimate.validation_s == pytest.approx(7.0 + 0.01 * len(split.valid))  # re-clustered once, all ranked
