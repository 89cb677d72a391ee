"""Countdown (Stream of Search): the problem, SoS's trace formats and import, the answer-only score.

problem: rules, seeded generation and splits; sos / sos_arith: SoS's trace text (and the variant with
the arithmetic written out); solution: SoS's optimal path, the solution-only control; sos_import:
reading SoS's own datasets; answer: SoS's answer-only score.
"""

DOMAIN = "metacot_core.domains.countdown.problem:CountdownDomain"
FORMATS = {
    "sos": "metacot_core.domains.countdown.sos:SosFormat",
    "sos-arith": "metacot_core.domains.countdown.sos_arith:SosArithFormat",
}
