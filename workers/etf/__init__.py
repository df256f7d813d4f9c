"""The ETF jobs: the KRX list in the morning, prices, NAVs and premiums after the close."""
