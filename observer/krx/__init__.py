"""The KRX data portal (data.krx.co.kr): login, the ETF list and the all-ETF daily table."""
