"""Explanation sources and their scores.

Sources: OpenAI's published explanations (imported by `neuronatlas.openai`), N2G-derived ones
(`neuronatlas.n2g`), and top-token explanations built from a neuron's own records
(`top_tokens`). Every source is scored with OpenAI's formulas
(`neuronatlas.openai_scores`), so explanations from different sources stand side by side.
"""
