# Stage clinical: responders, survival until HSCT, Simon decision, response rates,
# time to response, reactivation, safety, PK and the one-page endpoint table.

CLIN = config["clinical"]
CLIN_EVENTS = [res("inputs/validated/events.tsv")] if INPUTS["events"] else []
CLIN_PK = [res("inputs/validated/pk.tsv")] if INPUTS["pk"] else []


rule clinical_responders:
    input:
        patients=res("inputs/validated/patients.tsv"),
        responses=res("inputs/validated/responses.tsv"),
    output:
        report(
            res("clinical/responders.tsv"),
            caption="../report/clinical_responders.rst",
            category="Clinical",
        ),
        versions=vers("clinical_responders"),
    log:
        logp("clinical_responders"),
    benchmark:
        bench("clinical_responders")
    conda:
        "../../envs/clinical.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        definition=CLIN["responder_definition"],
        horizon=CLIN["horizon_days"],
    script:
        "../../scripts/clinical_responders.py"


rule clinical_endpoints:
    input:
        patients=res("inputs/validated/patients.tsv"),
        responses=res("inputs/validated/responses.tsv"),
        events=CLIN_EVENTS,
        pk=CLIN_PK,
    output:
        endpoints=report(
            res("clinical/endpoints.tsv"),
            caption="../report/clinical_endpoints.rst",
            category="Clinical",
        ),
        survival=res("clinical/survival.tsv"),
        survival_patients=res("clinical/survival_patients.tsv"),
        km=report(
            res("clinical/figures/km.png"),
            caption="../report/clinical_km.rst",
            category="Clinical",
        ),
        simon=report(
            res("clinical/simon.tsv"),
            caption="../report/clinical_simon.rst",
            category="Clinical",
        ),
        simon_decision=res("clinical/simon_decision.tsv"),
        rates=res("clinical/response_rates.tsv"),
        rates_fig=report(
            res("clinical/figures/response_rates.png"),
            caption="../report/clinical_response_rates.rst",
            category="Clinical",
        ),
        ttr=res("clinical/time_to_response.tsv"),
        ttr_patients=res("clinical/time_to_response_patients.tsv"),
        cuminc=report(
            res("clinical/figures/cumulative_incidence.png"),
            caption="../report/clinical_cumulative_incidence.rst",
            category="Clinical",
        ),
        reactivation=res("clinical/reactivation.tsv"),
        reactivation_cuminc=res("clinical/reactivation_cuminc.tsv"),
        horizons=report(
            res("clinical/cuminc_horizons.tsv"),
            caption="../report/clinical_cuminc_horizons.rst",
            category="Clinical",
        ),
        safety=res("clinical/safety.tsv"),
        safety_outside=res("clinical/safety_outside_window.tsv"),
        safety_windows=res("clinical/safety_windows.tsv"),
        viral=res("clinical/viral_infections.tsv"),
        versions=vers("clinical_endpoints"),
    log:
        logp("clinical_endpoints"),
    benchmark:
        bench("clinical_endpoints")
    conda:
        "../../envs/clinical.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        horizon=CLIN["horizon_days"],
        visits=CLIN["response_visits"],
        policy=CLIN["rate_policy"],
        rate_rule=CLIN["rate_rule"],
        primary_missing=CLIN["primary_missing"],
        hsct_competing=CLIN["hsct_competing"],
        safety_window=CLIN["safety_window"],
        pk_substitution=CLIN["pk_substitution"],
        simon=CLIN["simon"],
    script:
        "../../scripts/clinical_endpoints.py"


rule clinical_patients:
    input:
        patients=res("inputs/validated/patients.tsv"),
        responses=res("inputs/validated/responses.tsv"),
        samples=res("inputs/validated/samples.tsv"),
        simon=res("clinical/simon_decision.tsv"),
    output:
        flow=report(
            res("clinical/patient_flow.tsv"),
            caption="../report/clinical_patient_flow.rst",
            category="Clinical",
        ),
        flow_fig=report(
            res("clinical/figures/patient_flow.png"),
            caption="../report/clinical_patient_flow.rst",
            category="Clinical",
        ),
        swimmer=report(
            res("clinical/figures/swimmer.png"),
            caption="../report/clinical_swimmer.rst",
            category="Clinical",
        ),
    log:
        logp("clinical_patients"),
    benchmark:
        bench("clinical_patients")
    conda:
        "../../envs/clinical.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        visits=CLIN["response_visits"],
        horizon=CLIN["horizon_days"],
    script:
        "../../scripts/clinical_patients.py"


rule clinical_pk:
    input:
        pk=res("inputs/validated/pk.tsv"),
    output:
        summary=report(
            res("clinical/pk.tsv"),
            caption="../report/clinical_pk.rst",
            category="Clinical",
        ),
        values=res("clinical/pk_values.tsv"),
        ratio=res("clinical/pk_csf_plasma_ratio.tsv"),
        plasma=report(
            res("clinical/figures/pk_plasma.png"),
            caption="../report/clinical_pk.rst",
            category="Clinical",
        ),
        csf=report(
            res("clinical/figures/pk_csf.png"),
            caption="../report/clinical_pk.rst",
            category="Clinical",
        ),
    log:
        logp("clinical_pk"),
    benchmark:
        bench("clinical_pk")
    conda:
        "../../envs/clinical.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        substitution=CLIN["pk_substitution"],
        visits=config["visits"] + ["PRECOND8"],
    script:
        "../../scripts/clinical_pk.py"


TARGETS["clinical"] = [
    res("clinical/responders.tsv"),
    res("clinical/endpoints.tsv"),
    res("clinical/patient_flow.tsv"),
    res("clinical/figures/patient_flow.png"),
    res("clinical/figures/swimmer.png"),
] + ([res("clinical/pk.tsv")] if INPUTS["pk"] else [])
