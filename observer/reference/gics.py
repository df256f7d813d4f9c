"""GICS 2023 as data: 11 sectors and 25 industry groups (effective after 2023-03-17).

From shared/reference/krx-etf-and-metadata.md §4, itself checked against the PyPI ``gics``
0.2.1 definition file ``d_20230318.py`` (not a dependency: its import was broken). The
name of 3030 follows MSCI's industry-group name; the package says "Personal Care Products".
"""

from __future__ import annotations

__all__ = ["INDUSTRY_GROUPS", "SECTORS", "sector_of_group"]

SECTORS: dict[str, str] = {
    "10": "Energy",
    "15": "Materials",
    "20": "Industrials",
    "25": "Consumer Discretionary",
    "30": "Consumer Staples",
    "35": "Health Care",
    "40": "Financials",
    "45": "Information Technology",
    "50": "Communication Services",
    "55": "Utilities",
    "60": "Real Estate",
}

INDUSTRY_GROUPS: dict[str, str] = {
    "1010": "Energy",
    "1510": "Materials",
    "2010": "Capital Goods",
    "2020": "Commercial & Professional Services",
    "2030": "Transportation",
    "2510": "Automobiles & Components",
    "2520": "Consumer Durables & Apparel",
    "2530": "Consumer Services",
    "2550": "Consumer Discretionary Distribution & Retail",
    "3010": "Consumer Staples Distribution & Retail",
    "3020": "Food, Beverage & Tobacco",
    "3030": "Household & Personal Products",
    "3510": "Health Care Equipment & Services",
    "3520": "Pharmaceuticals, Biotechnology & Life Sciences",
    "4010": "Banks",
    "4020": "Financial Services",
    "4030": "Insurance",
    "4510": "Software & Services",
    "4520": "Technology Hardware & Equipment",
    "4530": "Semiconductors & Semiconductor Equipment",
    "5010": "Telecommunication Services",
    "5020": "Media & Entertainment",
    "5510": "Utilities",
    "6010": "Equity Real Estate Investment Trusts (REITs)",
    "6020": "Real Estate Management & Development",
}


def sector_of_group(group: str) -> str:
    """The sector code of an industry-group code ("4530" -> "45")."""
    return group[:2]
