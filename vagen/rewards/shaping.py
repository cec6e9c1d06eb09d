"""Video-MTR reward shaping (001, as its released code does), per turn of a trajectory and
across a batch:

- every valid-format turn earns `format_reward` (0.1), kept when the answer is wrong;
- a correct answer at turn t earns `answer_reward - turn_penalty * (t - 1)` (1.0 - 0.1(t-1),
  floored at 0), so the same answer found sooner is worth more;
- a turn whose fetched frames have a higher IoU with the relevant frames than the frames
  shown before it (the previous fetch, or the initial frames) by more than `iou_epsilon`
  earns `iou_reward` (0.5) - only when the final answer is correct (`gate_on_correct`;
  without the gate policies pile up retrievals that do not help);
- exploration: while few trajectories of the batch retrieve (< `rare_ratio` 10%: +1.0,
  < `low_ratio` 50%: +0.5), every turn that fetched frames earns the bonus, as the released
  code adds it to each retrieval turn. The share counts trajectories with at least one
  valid-format turn (the released code's "trajectories with a positive reward");
- returns per turn are discounted by `turn_discount` (1.0 in the code, 0.95 in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ShapingConfig:
    """Weights of the Video-MTR shaping; defaults are the released code's."""

    format_reward: float = field(
        default=0.1, metadata={"help": "reward of each turn whose action is well formed"})
    answer_reward: float = field(
        default=1.0, metadata={"help": "reward of a correct answer given at turn 1"})
    turn_penalty: float = field(
        default=0.1, metadata={"help": "taken off a correct answer per turn before it"})
    iou_reward: float = field(
        default=0.5, metadata={"help": "reward of a fetch that raises the IoU with the "
                                       "relevant frames over the frames shown before it"})
    iou_epsilon: float = field(
        default=0.001, metadata={"help": "IoU gain a fetch must exceed to earn iou_reward"})
    gate_on_correct: bool = field(
        default=True, metadata={"help": "pay iou_reward only when the final answer is "
                                        "correct (false: pay it on every improving fetch)"})
    exploration: bool = field(
        default=True, metadata={"help": "add the batch-level bonus to fetch turns while "
                                        "retrieval is rare in the batch"})
    rare_ratio: float = field(
        default=0.1, metadata={"help": "below this share of retrieving trajectories each "
                                       "fetch turn earns rare_bonus"})
    rare_bonus: float = field(default=1.0, metadata={"help": "bonus below rare_ratio"})
    low_ratio: float = field(
        default=0.5, metadata={"help": "below this share (and not below rare_ratio) each "
                                       "fetch turn earns low_bonus"})
    low_bonus: float = field(default=0.5, metadata={"help": "bonus below low_ratio"})
    turn_discount: float = field(
        default=1.0, metadata={"help": "discount of later turns' rewards in the per-turn "
                                       "returns (1.0 released code, 0.95 paper)"})

    def __post_init__(self) -> None:
        if not 0.0 <= self.rare_ratio <= self.low_ratio <= 1.0:
            raise ValueError(f"shaping.rare_ratio ({self.rare_ratio}) and shaping.low_ratio "
                             f"({self.low_ratio}) must satisfy 0 <= rare_ratio <= low_ratio <= 1")
        if not 0.0 < self.turn_discount <= 1.0:
            raise ValueError(f"shaping.turn_discount is {self.turn_discount}; use a value in "
                             "(0, 1], e.g. 1.0 (released code) or 0.95 (paper)")
        if self.iou_epsilon < 0.0:
            raise ValueError(f"shaping.iou_epsilon is {self.iou_epsilon}; use a value >= 0")


@dataclass
class TurnRecord:
    """What shaping needs to know about one policy turn."""

    valid_format: bool = field(metadata={"help": "the turn's action was well formed"})
    fetched: bool = field(
        default=False, metadata={"help": "the turn fetched frames (a retrieve, query or "
                                         "timestamps request that returned frames)"})
    frames_iou: float | None = field(
        default=None, metadata={"help": "IoU of the frames this turn fetched with the "
                                        "relevant frames; None when it fetched none"})


@dataclass
class TrajectoryRecord:
    """One episode: its turns in order and how it ended."""

    turns: list[TurnRecord] = field(metadata={"help": "the policy's turns, first to last"})
    correct: bool = field(default=False, metadata={"help": "the final answer is correct"})
    answer_turn: int | None = field(
        default=None, metadata={"help": "1-based turn of the answer (the last turn); None "
                                        "when the episode hit the turn limit unanswered"})
    initial_iou: float = field(
        default=0.0, metadata={"help": "IoU of the frames shown at reset with the relevant "
                                       "frames: what the first fetch must beat"})

    def __post_init__(self) -> None:
        if self.answer_turn is not None and self.answer_turn != len(self.turns):
            raise ValueError(f"answer_turn is {self.answer_turn} but the trajectory has "
                             f"{len(self.turns)} turns; an answer ends the episode, so set "
                             "answer_turn to the number of turns (or None when unanswered)")
        if self.correct and self.answer_turn is None:
            raise ValueError("correct=True needs answer_turn (the turn of the answer)")

    @property
    def retrieves(self) -> bool:
        return any(turn.fetched for turn in self.turns)


@dataclass
class ShapedBatch:
    """Per-turn rewards and discounted returns of each trajectory, plus batch metrics."""

    turn_rewards: list[list[float]]
    turn_returns: list[list[float]]
    metrics: dict[str, float]


def turn_rewards(traj: TrajectoryRecord, config: ShapingConfig) -> list[float]:
    """Format, answer and IoU rewards of each turn (no batch-level bonus)."""
    rewards = [config.format_reward if turn.valid_format else 0.0 for turn in traj.turns]
    if traj.correct:
        t = traj.answer_turn
        rewards[t - 1] += max(0.0, config.answer_reward - config.turn_penalty * (t - 1))
    if traj.correct or not config.gate_on_correct:
        previous = traj.initial_iou
        for i, turn in enumerate(traj.turns):
            if turn.frames_iou is None:
                continue
            if turn.frames_iou > previous + config.iou_epsilon:
                rewards[i] += config.iou_reward
            previous = turn.frames_iou
    return rewards


def retrieve_ratio(trajs: list[TrajectoryRecord]) -> float:
    """Share of trajectories with a valid-format turn that fetched frames at least once."""
    active = [traj for traj in trajs if any(turn.valid_format for turn in traj.turns)]
    return sum(traj.retrieves for traj in active) / len(active) if active else 0.0


def exploration_bonus(ratio: float, config: ShapingConfig) -> float:
    """Bonus per fetch turn for a batch whose retrieve ratio is `ratio`."""
    if not config.exploration:
        return 0.0
    if ratio < config.rare_ratio:
        return config.rare_bonus
    if ratio < config.low_ratio:
        return config.low_bonus
    return 0.0


def discounted_returns(rewards: list[float], discount: float) -> list[float]:
    """G_t = r_t + discount * G_{t+1}, turn by turn from the last."""
    returns, running = [], 0.0
    for reward in reversed(rewards):
        running = reward + discount * running
        returns.append(running)
    return returns[::-1]


def shape_batch(trajs: list[TrajectoryRecord], config: ShapingConfig | None = None) -> ShapedBatch:
    """Shaped per-turn rewards and returns of a batch of trajectories."""
    config = config or ShapingConfig()
    ratio = retrieve_ratio(trajs)
    bonus = exploration_bonus(ratio, config)
    rewards = []
    for traj in trajs:
        per_turn = zip(turn_rewards(traj, config), traj.turns, strict=True)
        rewards.append([r + bonus if turn.fetched else r for r, turn in per_turn])
    return ShapedBatch(
        turn_rewards=rewards,
        turn_returns=[discounted_returns(r, config.turn_discount) for r in rewards],
        metrics={"shaping/retrieve_ratio": ratio, "shaping/exploration_bonus": bonus},
    )
