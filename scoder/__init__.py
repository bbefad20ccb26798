"""SCoder: small open LLMs bootstrapped into code-instruction data synthesizers.

Each stage of the method is a plain function in a submodule of this package;
the Snakemake rules under ``rules/`` only wire files to these functions.
"""
