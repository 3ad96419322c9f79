"""Word lists the demo data is drawn from.

Real administrative-division codes, area codes, mobile segments, UnionPay BINs
and A-share codes, so detectors and catalogs see values shaped like production
data. All people are invented: names are random surname + given-name pairs.
"""

from __future__ import annotations

from typing import NamedTuple


class Region(NamedTuple):
    """One district: its GB/T 2260 code, names, fixed-line area code and streets."""

    code: str
    province: str
    city: str
    district: str
    area_code: str
    streets: tuple[str, ...]
    local_digits: int = 8  # length of local fixed-line numbers (Xiamen still has 7)


class Stock(NamedTuple):
    code: str
    name: str
    price: float


# (hanzi, pinyin) so e-mail local parts can be spelled from the name.
SURNAMES: tuple[tuple[str, str], ...] = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"),
    ("杨", "yang"), ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"),
    ("徐", "xu"), ("孙", "sun"), ("马", "ma"), ("朱", "zhu"), ("胡", "hu"),
    ("郭", "guo"), ("何", "he"), ("林", "lin"), ("罗", "luo"), ("高", "gao"),
    ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"), ("唐", "tang"),
    ("许", "xu"), ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"),
    ("欧阳", "ouyang"), ("司马", "sima"),
)  # fmt: skip

GIVEN_MALE: tuple[tuple[str, str], ...] = (
    ("伟", "wei"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"),
    ("勇", "yong"), ("杰", "jie"), ("涛", "tao"), ("明", "ming"), ("超", "chao"),
    ("建国", "jianguo"), ("志强", "zhiqiang"), ("海涛", "haitao"), ("俊杰", "junjie"),
    ("浩然", "haoran"), ("子轩", "zixuan"), ("宇航", "yuhang"), ("文博", "wenbo"),
)  # fmt: skip

GIVEN_FEMALE: tuple[tuple[str, str], ...] = (
    ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"),
    ("艳", "yan"), ("秀英", "xiuying"), ("桂英", "guiying"), ("婷婷", "tingting"),
    ("雪梅", "xuemei"), ("玉兰", "yulan"), ("欣怡", "xinyi"), ("梓涵", "zihan"),
    ("思雨", "siyu"), ("佳琪", "jiaqi"), ("晓燕", "xiaoyan"),
)  # fmt: skip

REGIONS: tuple[Region, ...] = (
    Region("110108", "北京市", "北京市", "海淀区", "010", ("中关村大街", "学院路", "知春路")),
    Region("110105", "北京市", "北京市", "朝阳区", "010", ("建国路", "朝阳北路", "望京街")),
    Region("310115", "上海市", "上海市", "浦东新区", "021", ("世纪大道", "张江路", "陆家嘴环路")),
    Region("310104", "上海市", "上海市", "徐汇区", "021", ("漕溪北路", "肇嘉浜路", "衡山路")),
    Region("440305", "广东省", "深圳市", "南山区", "0755", ("科技园路", "深南大道", "后海大道")),
    Region("440106", "广东省", "广州市", "天河区", "020", ("天河路", "珠江新城华夏路", "体育西路")),
    Region("330106", "浙江省", "杭州市", "西湖区", "0571", ("文三路", "天目山路", "古墩路")),
    Region("320102", "江苏省", "南京市", "玄武区", "025", ("中山路", "珠江路", "北京东路")),
    Region("320505", "江苏省", "苏州市", "虎丘区", "0512", ("狮山路", "长江路", "塔园路")),
    Region("510107", "四川省", "成都市", "武侯区", "028", ("人民南路", "科华北路", "天府大道")),
    Region("420106", "湖北省", "武汉市", "武昌区", "027", ("中北路", "武珞路", "徐东大街")),
    Region("120101", "天津市", "天津市", "和平区", "022", ("南京路", "滨江道", "营口道")),
    Region("500103", "重庆市", "重庆市", "渝中区", "023", ("解放碑民族路", "中山三路", "较场口")),
    Region("610113", "陕西省", "西安市", "雁塔区", "029", ("小寨东路", "高新路", "雁塔路")),
    Region("370202", "山东省", "青岛市", "市南区", "0532", ("香港中路", "东海西路", "山东路")),
    Region("350203", "福建省", "厦门市", "思明区", "0592", ("湖滨南路", "鹭江道", "厦禾路"), 7),
    Region("430104", "湖南省", "长沙市", "岳麓区", "0731", ("麓山南路", "枫林一路", "桐梓坡路")),
    Region("210102", "辽宁省", "沈阳市", "和平区", "024", ("南京北街", "三好街", "太原街")),
)

# Segments in use by the three carriers (and 17x virtual operators).
MOBILE_PREFIXES: tuple[str, ...] = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "147",
    "150", "151", "152", "153", "155", "156", "157", "158", "159", "166",
    "170", "173", "177", "180", "181", "182", "183", "185", "186", "187",
    "188", "189", "191", "198", "199",
)  # fmt: skip

# UnionPay debit BINs (ICBC, ABC, CCB, CMB, BOC, BoCom, PSBC).
CARD_BINS: tuple[str, ...] = ("622202", "622848", "621700", "622588", "621661", "622262", "621799")

STOCKS: tuple[Stock, ...] = (
    Stock("600519", "贵州茅台", 1680.0),
    Stock("601318", "中国平安", 45.2),
    Stock("600036", "招商银行", 33.8),
    Stock("000858", "五粮液", 142.5),
    Stock("000333", "美的集团", 68.9),
    Stock("300750", "宁德时代", 188.4),
    Stock("601012", "隆基绿能", 19.7),
    Stock("002594", "比亚迪", 245.0),
    Stock("600276", "恒瑞医药", 44.6),
    Stock("601166", "兴业银行", 17.3),
    Stock("000001", "平安银行", 10.9),
    Stock("600900", "长江电力", 26.1),
    Stock("688981", "中芯国际", 52.3),
)

EMPLOYER_PREFIXES: tuple[str, ...] = (
    "华信", "中远", "东方", "新世纪", "长城", "恒通", "金桥", "鼎盛", "海航", "明德",
)  # fmt: skip
EMPLOYER_TRADES: tuple[str, ...] = (
    "科技", "贸易", "建设工程", "医药", "物流", "食品", "电子", "咨询", "投资",
)  # fmt: skip
EMPLOYER_FORMS: tuple[str, ...] = ("有限公司", "股份有限公司", "集团有限公司")

EMAIL_DOMAINS: tuple[str, ...] = ("example.com", "example.cn", "mail.example.org")

# Relationship managers and the department that owns their book.
OWNERS: tuple[tuple[str, str], ...] = (
    ("u-sales-01", "retail"),
    ("u-sales-02", "retail"),
    ("u-sales-03", "retail"),
    ("u-wealth-01", "wealth"),
    ("u-partner-01", "partner"),
)

GRADES: tuple[str, ...] = ("A", "B", "C")
TIERS: tuple[str, ...] = ("VIP", "重要", "一般", "潜在", "流失")
RISK_LEVELS: tuple[str, ...] = ("C1", "C2", "C3", "C4", "C5")

NOTE_TEMPLATES: tuple[str, ...] = (
    "客户{name}{title}手机{mobile}，希望下周回访。",
    "{date}电话沟通，{name}{title}关注理财产品到期续作，联系电话{mobile}。",
    "已核对身份证{id_number}，客户地址变更为{address}。",
    "客户要求将分红转入尾号{card_tail}的银行卡，已提交复核。",
    "{name}{title}对风险等级评估有异议，约定面谈。",
    "无特别事项。",
)
