"""Rule clinical_endpoints: every clinical outcome measure as tables, figures and one summary."""

import pandas as pd

from rhlh.clinical import endpoints, pk, responders, safety
from rhlh.contract import timeline
from rhlh.figures import clinical as clinical_figures
from rhlh.io import save_figure, write_tsv
from rhlh.logs import setup_logging
from rhlh.simon import simon_decision, simon_designs
from rhlh.survival import CIF_COLUMNS
from rhlh.tables import read_validated
from rhlh.versions import write_versions

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
patients = read_validated(sm.input.patients, timeline.PATIENT_DAY_COLUMNS)
responses = read_validated(sm.input.responses, ["day"])
events = read_validated(sm.input.events[0], ["day", "grade"]) if sm.input.events else None
pk_summary = pk_ratio = None
if sm.input.pk:  # CSF concentrations and CSF/plasma ratios for the endpoint table
    pk_values = pk.pk_values(read_validated(sm.input.pk[0], ["day", "lloq"]), p.pk_substitution)
    pk_summary = pk.pk_summary(pk_values)
    pk_ratio = pk.csf_plasma_ratio(pk_values)
n = len(patients)

# primary endpoint: alive at HSCT or week 8, and KM of death censored at HSCT
primary = endpoints.primary_endpoint(patients, p.horizon, p.primary_missing)
status = responders.primary_endpoint_status(patients, p.horizon)
km, risk = endpoints.survival_until_hsct(patients, p.horizon)
write_tsv(km, sm.output.survival)
write_tsv(status, sm.output.survival_patients)
save_figure(clinical_figures.plot_km(km, risk, p.horizon), sm.output.km)
log.info("primary: %d/%d alive at HSCT or day %s", primary["x"], primary["n"], p.horizon)

# Simon two-stage design and the decisions it gives on this cohort (enrolment = file order);
# params.simon is the whole config section (its defaults come from the config schema)
s = p.simon
designs = simon_designs(s["p0"], s["p1"], s["alpha"], s["beta"], s["nmax"])
write_tsv(pd.DataFrame([d.as_dict() for d in designs.values()]), sm.output.simon)
design = designs[s["design"]]
success = responders.define_responders(patients, responses, s["success"], p.horizon)["responder"]
first = success.iloc[: design.n1]
decision = simon_decision(design, int(first.sum()), len(first), int(success.sum()), n)
decision.insert(0, "success_definition", s["success"])
decision.insert(0, "design", s["design"])
write_tsv(decision, sm.output.simon_decision)
log.info(
    "Simon %s design r1/n1=%d/%d, r/n=%d/%d: %s",
    s["design"],
    design.r1,
    design.n1,
    design.r,
    design.n,
    "; ".join(decision["decision"]),
)

# response rates by visit
# rate rule: w8_or_preconditioning (protocol) adds "W8 or PRECOND1"; itt as listed
rate_visits = endpoints.rate_visits(p.visits, p.rate_rule)
rates = endpoints.response_rates(patients, responses, rate_visits, p.policy)
rates.insert(0, "rule", p.rate_rule)
write_tsv(rates, sm.output.rates)
save_figure(clinical_figures.plot_response_rates(rates, rate_visits), sm.output.rates_fig)

# delay to first PR / CR, death competing (HSCT competing or censoring per config)
competing = ("death", "hsct") if p.hsct_competing else ("death",)
competing_text = "death and HSCT" if p.hsct_competing else "death (HSCT censoring)"
ttr, ttr_per, ttr_pat = {}, {}, []
for level, name in (("PR", "PR or better"), ("CR", "CR")):
    per, cif = endpoints.time_to_response(patients, responses, level, competing)
    ttr[name] = cif
    ttr_per[name] = per
    ttr_pat.append(per.assign(outcome_of_interest=name))
write_tsv(
    pd.concat([t.assign(outcome=k) for k, t in ttr.items()])[["outcome", *CIF_COLUMNS]],
    sm.output.ttr,
)
write_tsv(pd.concat(ttr_pat), sm.output.ttr_patients)
save_figure(
    clinical_figures.plot_cuminc(
        {f"first {k}": t for k, t in ttr.items()},
        title=f"Time to first response ({competing_text} competing; 95% band)",
    ),
    sm.output.cuminc,
)

# reactivation after PR/CR, death and HSCT competing, time from first response
react = endpoints.reactivation(patients, responses)
write_tsv(react[0], sm.output.reactivation)
write_tsv(react[1], sm.output.reactivation_cuminc)

# cumulative incidences at fixed horizons (D28, W8, pre-conditioning) and at the end
pre = endpoints.preconditioning_day(patients)
hz = dict(endpoints.FIXED_HORIZONS)
hz["pre-conditioning (median conditioning day - 1)"] = pre
horizons = pd.concat(
    [
        endpoints.cuminc_horizons(ttr, ttr_per, hz, competing_text),
        endpoints.cuminc_horizons(
            {"reactivation": react[1]},
            {"reactivation": react[0]},
            endpoints.REACTIVATION_HORIZONS,
            "death and HSCT",
        ),
    ]
)
write_tsv(horizons, sm.output.horizons)
log.info("cumulative incidences at %d horizons (pre-conditioning day %s)", len(horizons), pre)

# safety
# params.safety_window is the whole config section (start_day, end)
windows = safety.treatment_windows(patients, p.safety_window)
on_treatment, outside = safety.split_by_window(events, patients, p.safety_window)
write_tsv(windows, sm.output.safety_windows)
write_tsv(safety.adverse_events(on_treatment, n), sm.output.safety)
write_tsv(outside, sm.output.safety_outside)
write_tsv(safety.viral_infections(on_treatment, patients), sm.output.viral)
log.info(
    "safety window %s: %d events on treatment, %d outside",
    p.safety_window,
    len(on_treatment),
    len(outside),
)
window_text = (
    f"on treatment (day {p.safety_window['start_day']:g} to "
    f"{p.safety_window['end'].replace('_', ' ')})"
)

table = endpoints.endpoints_table(
    primary=primary,
    km=km,
    rates=rates,
    ttr=ttr,
    react=react,
    simon=decision,
    safety={
        "window": window_text,
        "grade3": safety.patients_with_grade(on_treatment, 3),
        "grade3_any": safety.patients_with_grade(events, 3),
        "viral": safety.patients_with_viral_infection(on_treatment),
        "viral_any": safety.patients_with_viral_infection(events),
        "n_outside": len(outside),
        "n": n,
    },
    horizon=p.horizon,
    horizons=horizons,
    pk=pk_summary,
    pk_ratio=pk_ratio,
)
write_tsv(table, sm.output.endpoints)
log.info("%d endpoints written", len(table))
write_versions(sm.output.versions, sm.rule)  # this environment's package versions
