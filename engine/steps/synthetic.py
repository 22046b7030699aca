"""Step 6, UE: synthetic alternative trades and the loans' best alternatives.

A synthetic trade is an instrument x coupon the loans could be delivered into, priced off the open
trades of that instrument (interpolated by coupon; a slope of 3.2 points per coupon point where
there is only one) and settling on the instrument's earliest open settlement. Each loan's options
are ranked by price + pay-up and by price + pay-up + carry.

In: loans, trades, ctx.pricing.  Out: pfill_syn_trade_base, pfill_syn_powerfill_guide (best per
loan per ranking), pfill_syn_powerfill_guide_all_rank (every option with both ranks). These rows
are kept for forensics even when a run fails or is cancelled (BR-9).
"""

from __future__ import annotations

import numpy as np

from .. import schema
from ..context import RunContext
from ..market import INSTRUMENTS
from ..pairs import rank_within, rate_window_pairs
from ..state import required

_COUPON_SLOPE = 3.2  # points of price per point of coupon


def _synthetic_trades(ctx: RunContext) -> dict[str, np.ndarray]:
    assert ctx.inputs is not None
    trades, loans = ctx.inputs.trades, ctx.inputs.loans
    pricing = required(ctx.pricing, "settle_price")
    rates = loans["note_rate"][~np.isnan(loans["note_rate"])]
    rows: dict[str, list] = {k: [] for k in ("syn_trade_id", "agency", "instrument", "coupon", "settlement_date",
                                             "price", "fin_rate", "days", "instrument_idx")}
    for idx, (code, spec) in enumerate(INSTRUMENTS.items()):
        mine = trades["instrument"] == code
        if not len(rates):
            break
        low = np.floor((rates.min() - spec.max_spread) / 0.5) * 0.5
        high = np.floor((rates.max() - spec.min_spread) / 0.5) * 0.5
        coupons = np.arange(max(low, 0.5), high + 0.25, 0.5)
        if mine.any():
            by_coupon = np.unique(trades["coupon"][mine])
            mean_price = np.array([trades["price"][mine & (trades["coupon"] == c)].mean() for c in by_coupon])
            anchor_c, anchor_p = by_coupon[0], mean_price[0]
            prices = np.interp(coupons, by_coupon, mean_price) if len(by_coupon) > 1 else \
                anchor_p + (coupons - anchor_c) * _COUPON_SLOPE
            # beyond the traded coupons, extend with the slope rather than flat
            prices = np.where(coupons < by_coupon[0], mean_price[0] + (coupons - by_coupon[0]) * _COUPON_SLOPE, prices)
            prices = np.where(coupons > by_coupon[-1], mean_price[-1] + (coupons - by_coupon[-1]) * _COUPON_SLOPE,
                              prices)
            settle = trades["settlement_date"][mine].min()
            first = np.flatnonzero(mine)[np.argmin(trades["settlement_date"][mine])]
            days, fin = pricing.trade_days[first], pricing.trade_fin_rate[first]
        else:
            prices = 100 + (coupons - 5.5) * _COUPON_SLOPE
            settle, days, fin = ctx.as_of64 + np.timedelta64(30, "D"), 30, 5.1
        for c, price in zip(coupons, prices, strict=True):
            rows["syn_trade_id"].append(f"SYN-{code}-{c:.2f}")
            rows["agency"].append(spec.agency)
            rows["instrument"].append(code)
            rows["coupon"].append(float(c))
            rows["settlement_date"].append(settle)
            rows["price"].append(round(float(price), 4))
            rows["fin_rate"].append(fin)
            rows["days"].append(days)
            rows["instrument_idx"].append(idx)
    out = {k: np.array(v, dtype=object if k in ("syn_trade_id", "agency", "instrument") else None)
           for k, v in rows.items()}
    out["settlement_date"] = np.array(rows["settlement_date"], dtype="datetime64[D]")
    return out


def run(ctx: RunContext) -> None:
    assert ctx.inputs is not None
    loans = ctx.inputs.loans
    syn = _synthetic_trades(ctx)
    rate = loans["note_rate"]
    ok = ~np.isnan(rate) & (loans["upb"] > 0)
    loan_idx, syn_idx = rate_window_pairs(rate, loans["product"], ok, syn["instrument"], syn["coupon"])
    # rows in the tables' key order (loan id, synthetic trade id): cheaper index inserts
    id_rank = np.argsort(np.argsort(syn["syn_trade_id"].astype(str)))
    order = np.lexsort((id_rank[syn_idx], loan_idx))
    loan_idx, syn_idx = loan_idx[order], syn_idx[order]
    price = syn["price"][syn_idx].astype(float)
    payup_matrix = required(ctx.pricing, "settle_price").payup_matrix
    payup = payup_matrix[loan_idx, syn["instrument_idx"][syn_idx].astype(np.int64)]
    carry = np.round((rate[loan_idx] - syn["fin_rate"][syn_idx].astype(float)) * syn["days"][syn_idx].astype(float)
                     / 360.0, 6)
    by_payup = price + payup
    by_carry = by_payup + carry
    rank_payup = rank_within(loan_idx, by_payup)
    rank_carry = rank_within(loan_idx, by_carry)

    n_syn = len(syn["syn_trade_id"])
    ctx.write(schema.pfill_syn_trade_base, {
        "syn_trade_id": syn["syn_trade_id"], "agency": syn["agency"], "instrument": syn["instrument"],
        "coupon": syn["coupon"].astype(float), "settlement_date": syn["settlement_date"],
        "price": syn["price"].astype(float),
        "eligible_loan_count": np.bincount(syn_idx, minlength=n_syn),
        "eligible_upb": np.round(np.bincount(syn_idx, weights=loans["upb"][loan_idx], minlength=n_syn), 2),
    })
    ctx.checkpoint()
    ctx.write(schema.pfill_syn_powerfill_guide_all_rank, {
        "loan_id": loans["loan_id"][loan_idx], "syn_trade_id": syn["syn_trade_id"][syn_idx], "price": price,
        "payup": payup, "carry": carry, "rank_payup": rank_payup, "rank_payup_carry": rank_carry,
    })
    ctx.checkpoint()
    best = {"payup": (rank_payup == 1, by_payup), "payup_carry": (rank_carry == 1, by_carry)}
    parts = []
    for ranking, (mask, score) in best.items():
        parts.append({
            "loan_id": loans["loan_id"][loan_idx[mask]], "ranking": np.full(int(mask.sum()), ranking, dtype=object),
            "syn_trade_id": syn["syn_trade_id"][syn_idx[mask]], "upb": loans["upb"][loan_idx[mask]],
            "price": price[mask], "payup": payup[mask], "carry": carry[mask], "score": score[mask],
            "value": np.round(loans["upb"][loan_idx[mask]] * score[mask] / 100.0, 2),
        })
    both = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    # key order (loan, ranking): loans are indexed in loan id order, and "payup" < "payup_carry"
    order = np.argsort(np.r_[loan_idx[best["payup"][0]] * 2, loan_idx[best["payup_carry"][0]] * 2 + 1], kind="stable")
    ctx.write(schema.pfill_syn_powerfill_guide, {k: v[order] for k, v in both.items()})
    ctx.counters["synthetic_trade_count"] = n_syn
    ctx.counters["synthetic_option_count"] = len(loan_idx)
