"""Which layer of each video a receiver gets from its budget: audio first (pure functions).

:func:`allocate` splits one receiver's downlink estimate: audio is reserved off the top (it is
never dropped or delayed for video), the top-priority tiles (pinned chair, dominant speaker) get
the highest layer that fits, the others the lowest, then upgrades while budget remains; below
the cost of a tile's lowest layer its video pauses. :class:`Allocator` adds the stability rules
(headroom to go up, one upgrade per second per slot). :func:`wanted_layers` is the union over
receivers of the layers each publication must keep encoding (dynacast).
See ``docs/media.md``, "Allocation".
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

_T = TypeVar("_T")

# Share of a VP8 L1T3 layer's bitrate carried by temporal layers 0, 0-1 and 0-2 (cumulative).
# By frames it would be 1/4, 1/2, 1 (TID 0 every 4th frame, TID 1 every 4th, TID 2 every other),
# but the encoder gives the frames others reference more bits: libwebrtc's rate allocator
# (SimulcastRateAllocator, kLayerRateAllocation) splits three temporal layers 40/20/40 %.
# Not measured here; erring high only makes a squeezed tile pause a little sooner.
TEMPORAL_SHARE = (0.4, 0.6, 1.0)
HEADROOM = 0.15  # an upgrade needs its cost × (1 + HEADROOM) to fit
# A slot keeps its layer while the layer's cost is at most (1 + STAY) × what is left for it: what
# a layer measures moves from second to second (a 640×360 layer read 470-1,290 kbit/s in
# consecutive seconds, bench weaklink), and with no band below the cost a tile went down and
# back up every second, a keyframe each time. No more than the pacer's slack above the
# estimate (SfuConfig.pace_factor 1.1): a real fall cuts the estimate far more than that.
STAY = 0.10
MIN_INTERVAL = 1.0  # seconds between two upgrades of one slot
COVER = 0.8  # a layer at least this share of the tile's width and height covers it


def _hash_once(cls: type[_T]) -> type[_T]:
    """Keep a frozen dataclass's hash once computed. Layers, demands and choices are the keys of
    the allocation's caches (:func:`ladder`, :func:`_pieces`), looked up for every receiver at
    every allocation; computed afresh, the nested hashes were most of its cost (bench simulcast).
    """
    compute = cls.__hash__

    def __hash__(self: _T) -> int:
        cached: dict[str, int] = self.__dict__
        value = cached.get("_hash")
        if value is None:
            value = cached["_hash"] = compute(self)  # frozen: written past __setattr__
        return value

    def __getstate__(self: _T) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("_hash", None)  # strings hash otherwise in another process
        return state

    cls.__hash__ = __hash__  # type: ignore[assignment]
    cls.__getstate__ = __getstate__  # type: ignore[assignment]
    return cls


@_hash_once
@dataclass(frozen=True)
class Layer:
    """One simulcast layer of a publication (a single-layer publication has one)."""

    spatial: int  # 0 = the lowest
    rid: str | None
    bitrate: int  # bits per second, measured (0: unknown)
    width: int | None = None
    height: int | None = None
    active: bool = True  # arriving now (Chromium may drop the top layer under CPU load)


@_hash_once
@dataclass(frozen=True)
class VideoDemand:
    """One video slot of a receiver and the publication it carries."""

    mid: str  # the receiver's slot
    publication: str  # "participant/mid" of what it carries
    layers: tuple[Layer, ...]
    priority: int = 1  # 0: pinned chair / dominant speaker (highest first), then the others
    tile: tuple[int, int] | None = None  # rendered size the page reported, None: unknown
    temporal_layers: int = 1  # 3 for L1T3; 1: no temporal scalability
    screen: bool = False  # screen share: loses frame rate, never sharpness


@_hash_once
@dataclass(frozen=True)
class LayerChoice:
    """What one slot forwards: ``spatial`` None is paused; ``temporal`` None is every layer."""

    spatial: int | None
    temporal: int | None
    bitrate: int  # what it is expected to cost
    rid: str | None = None
    width: int | None = None
    height: int | None = None

    @property
    def paused(self) -> bool:
        return self.spatial is None


PAUSED = LayerChoice(None, None, 0)
# No layer of the publication arrives (yet: a newcomer, or a publisher that stopped): not a
# bandwidth pause. The slot waits on the lowest layer and takes it when it comes; the page
# shows no "weak connection" label for a stream that simply has not started.
WAITING = LayerChoice(0, None, 0)


def tile_cap(layers: Sequence[Layer], tile: tuple[int, int] | None) -> int:
    """Index in ``layers`` of the highest layer worth sending to a tile of this size.

    The lowest layer that covers the tile (at least ``COVER`` of its width and height), so
    no thumbnail gets the 640×360 layer; a hidden tile (0×0) the lowest; unknown sizes: the top.
    """
    if not layers:
        return -1
    if tile is None:
        return len(layers) - 1
    width, height = tile
    for i, layer in enumerate(layers):
        if layer.width is None or layer.height is None:
            return len(layers) - 1
        if layer.width >= width * COVER and layer.height >= height * COVER:
            return i
    return len(layers) - 1


@functools.lru_cache(maxsize=4096)  # allocate() and next_budget() ask for the same ones often
def ladder(demand: VideoDemand, default_bitrate: int = 300_000) -> tuple[LayerChoice, ...]:
    """The choices for one slot, from the cheapest to the best, within its tile's cap."""
    layers = sorted((layer for layer in demand.layers if layer.active), key=lambda layer: layer.spatial)
    if not layers:
        return ()
    cap = tile_cap(layers, demand.tile)
    usable = layers[: cap + 1]
    if demand.screen:
        usable = usable[-1:]  # never scaled below legible: the sharpest allowed, frame rate goes first

    def choice(layer: Layer, temporal: int | None) -> LayerChoice:
        bitrate = layer.bitrate or default_bitrate
        share = 1.0 if temporal is None else TEMPORAL_SHARE[temporal]
        return LayerChoice(
            layer.spatial, temporal, int(bitrate * share), layer.rid, layer.width, layer.height
        )

    rungs: list[LayerChoice] = []
    if demand.temporal_layers >= 3:
        rungs += [choice(usable[0], 0), choice(usable[0], 1)]
    elif demand.temporal_layers == 2:
        rungs.append(choice(usable[0], 0))
    rungs += [choice(layer, None) for layer in usable]
    return tuple(rungs)


def _rank(rungs: Sequence[LayerChoice], choice: LayerChoice | None) -> int:
    """Index of ``choice`` among ``rungs``; -1 for paused or a choice no longer offered."""
    if choice is None or choice.paused:
        return -1
    for i, rung in enumerate(rungs):
        if (rung.spatial, rung.temporal) == (choice.spatial, choice.temporal):
            return i
    # The layer vanished or the cap moved: rank by cost, so that going back up needs headroom.
    below = [i for i, rung in enumerate(rungs) if rung.bitrate <= choice.bitrate]
    return below[-1] if below else -1


def allocate(
    budget: int,
    audio: int,
    videos: Sequence[VideoDemand],
    previous: Mapping[str, LayerChoice] | None = None,
    *,
    headroom: float = HEADROOM,
) -> dict[str, LayerChoice]:
    """Per video slot (by mid), its layer within ``budget`` bits per second, audio first.

    ``audio`` (what the receiver's audio slots cost) is taken off the top. Then each top
    priority tile (priority 0) gets the highest rung of its ladder that fits, every other tile
    its lowest, then the others are raised one rung at a time, in priority order, while the
    budget allows. A rung above the slot's ``previous`` one must fit with ``headroom`` to spare.
    Results are cached (see :func:`_allocation`): receivers with the same demands share them.
    """
    return dict(_allocation(budget - max(audio, 0), videos, previous or {}, headroom)[0])


# The allocation depends on the budget left after audio ("room") only through comparisons
# with it, so it is the same over a range of rooms: per distinct (demands, previous choices,
# headroom), the ranges computed so far and their results. Most receivers of a meeting have the
# same demands (the same publications, tile sizes and choices), and their budgets mostly fall in
# ranges another receiver, or this one a tick ago, already computed.
_Key = tuple[tuple[VideoDemand, ...], tuple[LayerChoice | None, ...], float]
_Piece = tuple[int, int | None, dict[str, LayerChoice]]  # [low, high) (None: unbounded), result
CACHE_KEYS = 512  # distinct demands remembered (least recently used dropped)
CACHE_PIECES = 16  # ranges remembered per demands (oldest dropped)
_cache: OrderedDict[_Key, list[_Piece]] = OrderedDict()


def _allocation(
    room: int,
    videos: Sequence[VideoDemand],
    previous: Mapping[str, LayerChoice],
    headroom: float,
    pieces: list[_Piece] | None = None,
) -> tuple[Mapping[str, LayerChoice], int | None]:
    """:func:`allocate`'s result for ``room`` (budget after audio), from the cache when a range
    computed before holds it, and the smallest room above it where the result may change (None:
    no larger room changes it). ``pieces``: :func:`_pieces` of the same arguments, if known. The
    result must not be modified."""
    if not isinstance(room, int):
        return _allocate(room, videos, previous, headroom)[0], room  # (not cached)
    if pieces is None:
        pieces = _pieces(videos, previous, headroom)
    for low, high, result in pieces:
        if low <= room and (high is None or room < high):
            return result, high
    result, high = _allocate(room, videos, previous, headroom)
    pieces.append((room, high, result))
    if len(pieces) > CACHE_PIECES:
        del pieces[0]
    return result, high


def _pieces(
    videos: Sequence[VideoDemand], previous: Mapping[str, LayerChoice], headroom: float
) -> list[_Piece]:
    """The cached ranges of these arguments (allocate reads ``previous`` of its slots only)."""
    key = (tuple(videos), tuple(previous.get(v.mid) for v in videos), headroom)
    pieces = _cache.get(key)
    if pieces is None:
        pieces = _cache[key] = []
        if len(_cache) > CACHE_KEYS:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    return pieces


def cache_clear() -> None:
    """Forget every cached allocation (tests)."""
    _cache.clear()


def _allocate(
    room: int, videos: Sequence[VideoDemand], previous: Mapping[str, LayerChoice], headroom: float
) -> tuple[dict[str, LayerChoice], int | None]:
    """The allocation of ``room`` (the budget after audio), computed, and the smallest integer room
    above it at which a comparison it made would come out otherwise (None: none would): below
    that every decision, so the result, is the same."""
    order = sorted(range(len(videos)), key=lambda i: videos[i].priority)
    rungs = {v.mid: ladder(v) for v in videos}
    # A slot's rung last time: above it, headroom is needed (a new slot needs none).
    held = {
        v.mid: _rank(rungs[v.mid], previous[v.mid]) if v.mid in previous else len(rungs[v.mid])
        for v in videos
    }
    remaining = room
    chosen: dict[str, int] = {v.mid: -1 for v in videos}
    change: list[int | None] = [None]  # the smallest room at which a "does not fit" turns

    def cost(mid: str, rank: int) -> int:
        return rungs[mid][rank].bitrate if rank >= 0 else 0

    def needed(mid: str, rank: int) -> float:
        extra = cost(mid, rank) - cost(mid, chosen[mid])
        if rank > held[mid]:
            return extra * (1 + headroom)
        if rank == held[mid]:  # staying: its cost may exceed what is left by STAY
            return extra - cost(mid, rank) * STAY / (1 + STAY)
        return extra

    def fits(mid: str, rank: int) -> bool:
        need = needed(mid, rank)
        if need <= remaining:
            return True
        # It would fit from the room where ``need <= room - spent`` (spent so far: room - remaining).
        at = math.ceil(need) + (room - remaining) if isinstance(remaining, int) else None
        if at is not None and (change[0] is None or at < change[0]):
            change[0] = at
        return False

    for i in order:
        video = videos[i]
        mid = video.mid
        ranks = rungs[mid]
        if not ranks:
            continue
        if video.priority == 0:
            top = [rank for rank in range(len(ranks)) if fits(mid, rank)]
        else:  # the lowest spatial layer, at full frame rate if it fits, else squeezed
            top = [
                rank
                for rank in range(len(ranks))
                if ranks[rank].spatial == ranks[0].spatial and fits(mid, rank)
            ]
        if top:
            remaining -= cost(mid, top[-1])
            chosen[mid] = top[-1]
    # Upgrades, one rung at a time, round after round, in priority order.
    progress = True
    while progress:
        progress = False
        for i in order:
            mid = videos[i].mid
            rank = chosen[mid]
            if rank < 0 or rank + 1 >= len(rungs[mid]):
                continue
            if fits(mid, rank + 1):
                remaining -= cost(mid, rank + 1) - cost(mid, rank)
                chosen[mid] = rank + 1
                progress = True
    result = {
        v.mid: rungs[v.mid][chosen[v.mid]] if chosen[v.mid] >= 0 else PAUSED if rungs[v.mid] else WAITING
        for v in videos
    }
    return result, change[0]


def next_budget(
    budget: int,
    audio: int,
    videos: Sequence[VideoDemand],
    previous: Mapping[str, LayerChoice] | None = None,
    *,
    limit: int,
    headroom: float = HEADROOM,
) -> int | None:
    """The budget a probe should ask for, at most ``limit``: the smallest (in 5 % steps) that
    gets every upgrade the allocation would make at ``limit``. None: nothing higher to get
    within ``limit``. One probe may so raise several slots: a link that came back is climbed in
    a few probes, not one per rung (each probe takes seconds to succeed)."""
    previous = previous or {}
    base = _ranks(videos, previous)
    if all(base[v.mid] >= len(ladder(v)) - 1 for v in videos):
        return None  # every slot has its best already
    goal = _ranks(videos, allocate(limit, audio, videos, previous, headroom=headroom))
    if all(goal[mid] <= base[mid] for mid in goal):
        return None
    trial = max(budget, 1)
    reserved = max(audio, 0)
    pieces = _pieces(videos, previous, headroom)
    ladders = [(v.mid, ladder(v)) for v in videos]
    same_below: int | None = None  # trials whose room is below this allocate as the last one did
    while True:
        trial = int(trial * 1.05) + 1
        if trial >= limit:
            return limit
        room = trial - reserved
        if same_below is not None and room < same_below:
            continue  # the same allocation as the last trial: it falls short of the goal too
        got, same_below = _allocation(room, videos, previous, headroom, pieces)
        if same_below is None:
            same_below = limit + 1 - reserved  # no larger budget allocates otherwise
        if all(_rank(rungs, got.get(mid)) >= goal[mid] for mid, rungs in ladders):
            return trial


def _ranks(videos: Sequence[VideoDemand], choices: Mapping[str, LayerChoice]) -> dict[str, int]:
    return {v.mid: _rank(ladder(v), choices.get(v.mid)) for v in videos}


@dataclass
class Allocator:
    """:func:`allocate` for one receiver over time: an upgrade of a slot waits ``min_interval``
    after its last change (downgrades at once: the link will not wait)."""

    min_interval: float = MIN_INTERVAL
    headroom: float = HEADROOM
    choices: dict[str, LayerChoice] = field(default_factory=dict)
    changed: dict[str, float] = field(default_factory=dict)
    carried: dict[str, str] = field(default_factory=dict)  # slot -> the publication it carried

    def update(
        self, now: float, budget: int, audio: int, videos: Sequence[VideoDemand]
    ) -> dict[str, LayerChoice]:
        """The choices now; ``choices`` keeps them for the next call."""
        for video in videos:  # a slot that switched to another publication starts afresh
            if self.carried.get(video.mid) != video.publication:
                self.choices.pop(video.mid, None)
                self.changed.pop(video.mid, None)
        self.carried = {video.mid: video.publication for video in videos}
        target = allocate(budget, audio, videos, self.choices, headroom=self.headroom)
        result: dict[str, LayerChoice] = {}
        for video in videos:
            mid = video.mid
            new, old = target[mid], self.choices.get(mid)
            if old is not None and new != old:
                rungs = ladder(video)
                upgrade = new.bitrate > old.bitrate or (old.paused and not new.paused)
                still_offered = old.paused or _rank(rungs, old) >= 0
                if upgrade and still_offered and now - self.changed.get(mid, -1e9) < self.min_interval:
                    new = old
            if new != old:
                self.changed[mid] = now
            result[mid] = new
        self.choices = result
        return dict(result)

    def next_budget(
        self, budget: int, audio: int, videos: Sequence[VideoDemand], *, limit: int
    ) -> int | None:
        """What a probe should ask for (see :func:`next_budget`)."""
        return next_budget(budget, audio, videos, self.choices, limit=limit, headroom=self.headroom)

    def next_rung(self, budget: int, audio: int, videos: Sequence[VideoDemand], *, limit: int) -> int | None:
        """The smallest budget (5 % steps, at most ``limit``) that raises any slot one rung."""
        base = _ranks(videos, self.choices)
        trial = max(budget, 1)
        while (trial := int(trial * 1.05) + 1) <= limit:
            got = allocate(trial, audio, videos, self.choices, headroom=self.headroom)
            if any(rank > base[mid] for mid, rank in _ranks(videos, got).items()):
                return trial
        return None


def wanted_layers(
    demands: Mapping[str, Sequence[VideoDemand]],
    choices: Mapping[str, Mapping[str, LayerChoice]],
    publications: Mapping[str, Sequence[Layer]],
) -> dict[str, tuple[str, ...]]:
    """The rids each publication (``"participant/mid"``) must keep encoding (dynacast).

    Its lowest layer always (a receiver that drops or resumes gets it at once); for each
    receiver slot carrying it, every layer up to the one chosen and the next one within the
    tile's cap (so an upgrade or probe finds it running). Layers nobody may get are stopped.
    """
    wanted: dict[str, set[int]] = {key: {0} for key in publications}
    for receiver, videos in demands.items():
        picked = choices.get(receiver, {})
        for video in videos:
            # Every layer, arriving or not: one this dynacast stopped does not arrive, and must
            # still be asked for again when the receiver may step up to it.
            layers = sorted(video.layers, key=lambda layer: layer.spatial)
            if not layers or video.publication not in wanted:
                continue
            choice = picked.get(video.mid)
            cap = layers[tile_cap(layers, video.tile)].spatial
            after = 0 if choice is None or choice.spatial is None else choice.spatial + 1
            wanted[video.publication].update(range(0, min(after, cap) + 1))
    result: dict[str, tuple[str, ...]] = {}
    for key, offered in publications.items():
        spatial = wanted[key]
        result[key] = tuple(
            layer.rid for layer in _by_spatial(offered) if layer.spatial in spatial and layer.rid is not None
        )
    return result


def _by_spatial(layers: Iterable[Layer]) -> list[Layer]:
    return sorted(layers, key=lambda layer: layer.spatial)
