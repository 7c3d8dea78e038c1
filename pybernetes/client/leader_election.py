"""Leader election on a coordination.k8s.io Lease (client-go's leaderelection):
candidates race to write their identity into the Lease with compare-and-swap; the
holder renews it every `retry_period`; when renewals stop for `lease_duration` any
candidate may take it. A leader that cannot renew within `renew_deadline` stops its
work and raises LeadershipLost, so its process exits instead of acting twice."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Awaitable, Callable

from pybernetes.client.api import LEASES, APIClient
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)


class LeadershipLost(Exception):
    pass


def micro_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(s: str | None) -> datetime | None:
    if not s:
        return None
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None


class LeaderElector:
    def __init__(self, client: APIClient, lease_name: str, identity: str,
                 namespace: str = "kube-system", lease_duration: float = 15,
                 renew_deadline: float = 10, retry_period: float = 2):
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")
        self.client, self.name, self.identity = client, lease_name, identity
        self.namespace = namespace
        self.lease_duration, self.renew_deadline = lease_duration, renew_deadline
        self.retry_period = retry_period
        self.is_leader = False
        self.observed_holder = ""  # holderIdentity as last read from the Lease

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Wait to become leader, then run `lead()` while renewing. Returns when lead()
        returns; raises LeadershipLost if the Lease could not be kept."""
        await self._acquire()
        log.info("%s: successfully acquired lease %s/%s", self.identity, self.namespace,
                 self.name)
        self.is_leader = True
        work = asyncio.ensure_future(lead())
        renew = asyncio.ensure_future(self._renew_loop())
        lost = False
        try:
            done, _ = await asyncio.wait({work, renew}, return_when=asyncio.FIRST_COMPLETED)
            if renew in done:
                lost = isinstance(renew.exception(), LeadershipLost)
                renew.result()
            work.result()
        finally:
            self.is_leader = False
            renew.cancel()
            work.cancel()
            # The work must have stopped before the Lease is given up: a standby that
            # takes over at once must not find us still acting.
            await asyncio.gather(work, renew, return_exceptions=True)
            if not lost:
                await self.release()

    async def _acquire(self) -> None:
        """Try every retry_period until the Lease is ours; API trouble is only logged
        (components start before the API server is ready, standbys outlive its restarts)."""
        while True:
            try:
                # bounded: a hung request must not keep a candidate from trying again
                if await asyncio.wait_for(self.try_acquire_or_renew(), self.renew_deadline):
                    return
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - StatusError, connection errors: retry
                log.warning("%s: error acquiring lease %s/%s: %s", self.identity,
                            self.namespace, self.name, str(e) or type(e).__name__)
            await asyncio.sleep(self.retry_period)

    async def _renew_loop(self) -> None:
        """Renew every retry_period. Each round (as client-go) retries until
        renew_deadline after it began; a round that never succeeds, or a Lease seen in
        another's hands, is LeadershipLost."""
        while True:
            await asyncio.sleep(self.retry_period)
            await self._renew_round()

    async def _renew_round(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.renew_deadline
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise LeadershipLost(f"{self.identity}: failed to renew lease "
                                     f"{self.namespace}/{self.name}: timed out after "
                                     f"{self.renew_deadline:g}s")
            try:
                # bounded by what is left: a hung request must not outlast the deadline
                if await asyncio.wait_for(self.try_acquire_or_renew(), left):
                    return
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - timeouts, StatusError, connection errors
                log.warning("%s: renewing lease %s/%s failed: %s", self.identity,
                            self.namespace, self.name, str(e) or type(e).__name__)
            holder = self.observed_holder
            if holder and holder != self.identity:
                raise LeadershipLost(f"{self.identity}: lease {self.namespace}/{self.name} "
                                     f"is now held by {holder}")
            await asyncio.sleep(max(0.0, min(self.retry_period, deadline - loop.time())))

    async def try_acquire_or_renew(self) -> bool:
        """One attempt: True when we hold the Lease afterwards."""
        now = datetime.now(timezone.utc)
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except StatusError as e:
            if e.code != 404:
                raise
            return await self._create(now)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        self.observed_holder = holder
        if holder and holder != self.identity and not self._expired(spec, now):
            return False
        new_spec = dict(spec, holderIdentity=self.identity, renewTime=micro_time(now),
                        leaseDurationSeconds=int(self.lease_duration))
        if holder != self.identity:
            new_spec["acquireTime"] = micro_time(now)
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        lease["spec"] = new_spec
        try:
            await self.client.update(LEASES, lease)
        except StatusError as e:
            if e.code == 409:  # somebody else wrote it first
                self.observed_holder = ""  # unknown until read again
                return False
            raise
        return True

    def _expired(self, spec: dict, now: datetime) -> bool:
        """Wall clock against the holder's last renewal: every candidate compares the
        same record, so a newcomer need not watch a full lease period first."""
        renewed = parse_micro_time(spec.get("renewTime")) or parse_micro_time(
            spec.get("acquireTime"))
        if renewed is None:
            return True
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        return (now - renewed).total_seconds() > duration

    async def _create(self, now: datetime) -> bool:
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": self.name, "namespace": self.namespace},
                 "spec": {"holderIdentity": self.identity,
                          "leaseDurationSeconds": int(self.lease_duration),
                          "acquireTime": micro_time(now), "renewTime": micro_time(now),
                          "leaseTransitions": 0}}
        try:
            await self.client.create(LEASES, lease)
        except StatusError as e:
            if e.code == 409:
                return False
            raise
        return True

    async def release(self) -> None:
        """Step down at once on a clean stop (client-go's ReleaseOnCancel): clear the
        holder so a standby takes over without waiting for the lease to run out.
        Bounded by renew_deadline: an unreachable server must not hold up an exit."""
        try:
            await asyncio.wait_for(self._release(), self.renew_deadline)
        except Exception as e:  # noqa: BLE001 - best effort while shutting down
            log.debug("releasing lease failed: %s", e)

    async def _release(self) -> None:
        lease = await self.client.get(LEASES, self.name, self.namespace)
        spec = lease.get("spec") or {}
        if spec.get("holderIdentity") != self.identity:
            return
        lease["spec"] = dict(spec, holderIdentity="", leaseDurationSeconds=1)
        await self.client.update(LEASES, lease)
        log.info("%s: released lease %s/%s", self.identity, self.namespace, self.name)
