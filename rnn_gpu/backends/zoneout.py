"""The recurrence with zoneout (Krueger et al. 2017), h_t = z_t * h_(t-1) +
(1 - z_t) * tanh(P_t + W h_(t-1)), forward and backward, written once
against the backend's array module. No kernel variant exists for it: every
backend, the kernel backends included, runs these loops on its own array
module while zoneout is on (the fused kernels run whenever it is off)."""
from __future__ import annotations


class ZoneoutLoops:
    """A mixin of the backends (base.NumpyBackend): needs `xp`, `tanh_` and `matmul`."""

    def zoneout_forward(self, P, W, h0, Z):
        """C[t] = tanh(P[t] + Hs[t-1] @ W.T), Hs[t] = Z[t] * Hs[t-1] + (1 - Z[t]) * C[t],
        Hs[-1] = h0. Z: (T, B, H) of 0 and 1 (training's masks: 1 keeps the
        previous state) or a number p (the expectation, for evaluation).
        Returns (Hs, C): the backward pass needs both."""
        xp = self.xp
        Hs, C = xp.empty_like(P), xp.empty_like(P)
        WT = xp.ascontiguousarray(W.T)
        keep, take = self._zoneout_weights(Z)
        h = h0
        for t in range(P.shape[0]):
            c, out = C[t], Hs[t]
            xp.matmul(h, WT, out=c)
            c += P[t]
            self.tanh_(c)
            xp.multiply(keep if xp.ndim(keep) == 0 else keep[t], h, out=out)
            out += (take if xp.ndim(take) == 0 else take[t]) * c
            h = out
        return Hs, C

    def zoneout_backward(self, G, Hs, C, h0, W, Z):
        """The gradients for the pre-activations A[t] = P[t] + Hs[t-1] @ W.T
        and for h0 of `zoneout_forward`, given G[t], the gradient for Hs[t]
        from outside the recurrence: with gH[t] = G[t] + Z[t+1] * gH[t+1] +
        dA[t+1] @ W (gH[T] = 0), dA[t] = gH[t] * (1 - Z[t]) * (1 - C[t]**2) and
        dh0 = Z[0] * gH[0] + dA[0] @ W. Returns (dA, dh0)."""
        xp = self.xp
        keep, take = self._zoneout_weights(Z)
        dA = xp.multiply(C, C)
        xp.subtract(1, dA, out=dA)
        dA *= take
        gH, through = G[-1].copy(), xp.empty_like(G[0])
        T = G.shape[0]
        for t in range(T - 1, -1, -1):
            if t < T - 1:
                xp.matmul(dA[t + 1], W, out=through)
                gH *= keep if xp.ndim(keep) == 0 else keep[t + 1]
                gH += through
                gH += G[t]
            dA[t] *= gH
        gH *= keep if xp.ndim(keep) == 0 else keep[0]
        gH += self.matmul(dA[0], W)
        return dA, gH

    def _zoneout_weights(self, Z):
        """(Z, 1 - Z): of the previous state and of the new candidate."""
        if self.xp.ndim(Z) == 0:
            return float(Z), 1 - float(Z)
        return Z, 1 - Z
