"""Hand-written Python tasks for the python_coder training set (EVO-TR team, Apache-2.0).

Each task: name, English and Turkish request, solution code, asserts, one-line explanations in both
languages, and optionally a buggy version with the cause of the bug. build_training_data.py turns
them into chat examples (write / yaz / explain / fix) and runs every piece of code.
"""

T = []


def task(name, en, tr, code, tests, exp_en, exp_tr, bug=None, cause_en=None, cause_tr=None):
    T.append(dict(name=name, en=en, tr=tr, code=code.strip("\n"), tests=tests.strip("\n"), exp_en=exp_en, exp_tr=exp_tr,
                  bug=bug.strip("\n") if bug else None, cause_en=cause_en, cause_tr=cause_tr))


task("word_frequencies", "Write a function that counts how often each word occurs in a text, ignoring case.",
     "Bir metinde her kelimenin kaç kez geçtiğini sayan, büyük/küçük harf ayırmayan bir fonksiyon yaz.",
     '''
from collections import Counter


def word_frequencies(text):
    return dict(Counter(text.lower().split()))
''', '''
assert word_frequencies("a b A") == {"a": 2, "b": 1}
assert word_frequencies("") == {}
''', "Counter tallies the lower-cased words produced by split().",
     "Counter, split() ile ayrılan ve küçük harfe çevrilen kelimeleri sayar.",
     bug='''
def word_frequencies(text):
    counts = {}
    for word in text.lower().split():
        counts[word] += 1
    return counts
''', cause_en="A new word has no entry yet, so `counts[word] += 1` raises KeyError; use `counts.get(word, 0) + 1` or Counter.",
     cause_tr="Yeni bir kelimenin sözlükte karşılığı yok; `counts[word] += 1` KeyError verir. `counts.get(word, 0) + 1` ya da Counter kullan.")

task("chunk_list", "Write a function that splits a list into chunks of size n (the last chunk may be shorter).",
     "Bir listeyi n elemanlı parçalara bölen bir fonksiyon yaz (son parça daha kısa olabilir).",
     '''
def chunk_list(items, n):
    if n <= 0:
        raise ValueError("n must be positive")
    return [items[i:i + n] for i in range(0, len(items), n)]
''', '''
assert chunk_list([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
assert chunk_list([], 3) == []
''', "range steps by n and each slice takes up to n items; n <= 0 is rejected.",
     "range n'er n'er ilerler, her dilim en fazla n eleman alır; n <= 0 reddedilir.",
     bug='''
def chunk_list(items, n):
    return [items[i:i + n] for i in range(0, len(items) - n, n)]
''', cause_en="`range(0, len(items) - n, n)` stops too early and drops the last chunk; the stop must be `len(items)`.",
     cause_tr="`range(0, len(items) - n, n)` erken durur ve son parçayı kaybeder; bitiş değeri `len(items)` olmalı.")

task("flatten", "Write a function that flattens an arbitrarily nested list.",
     "İç içe geçmiş, derinliği belli olmayan bir listeyi düzleştiren bir fonksiyon yaz.",
     '''
def flatten(items):
    result = []
    for item in items:
        if isinstance(item, list):
            result.extend(flatten(item))
        else:
            result.append(item)
    return result
''', '''
assert flatten([1, [2, [3, [4]]], 5]) == [1, 2, 3, 4, 5]
assert flatten([]) == []
''', "Recursion: sub-lists are flattened first and their items appended in order.",
     "Özyineleme: alt listeler önce düzleştirilir, elemanları sırayla eklenir.")

task("merge_sorted", "Merge two sorted lists into one sorted list in linear time.",
     "Sıralı iki listeyi doğrusal zamanda tek bir sıralı listede birleştir.",
     '''
def merge_sorted(a, b):
    i = j = 0
    out = []
    while i < len(a) and j < len(b):
        if a[i] <= b[j]:
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out + a[i:] + b[j:]
''', '''
assert merge_sorted([1, 4, 9], [2, 3, 10]) == [1, 2, 3, 4, 9, 10]
assert merge_sorted([], [1]) == [1]
''', "Two pointers walk both lists, always taking the smaller head; leftovers are appended.",
     "İki işaretçi listeleri dolaşır, her adımda küçük olanı alır; kalanlar sona eklenir.",
     bug='''
def merge_sorted(a, b):
    i = j = 0
    out = []
    while i < len(a) and j < len(b):
        if a[i] <= b[j]:
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out
''', cause_en="When one list runs out, the rest of the other is never added; return `out + a[i:] + b[j:]`.",
     cause_tr="Listelerden biri bitince diğerinin kalanı eklenmiyor; `out + a[i:] + b[j:]` döndür.")

task("binary_search", "Implement binary search that returns the index of a value in a sorted list, or -1.",
     "Sıralı bir listede bir değerin indeksini döndüren, yoksa -1 veren ikili arama yaz.",
     '''
def binary_search(items, target):
    lo, hi = 0, len(items) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if items[mid] == target:
            return mid
        if items[mid] < target:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1
''', '''
assert binary_search([1, 3, 5, 7], 7) == 3
assert binary_search([1, 3, 5, 7], 4) == -1
assert binary_search([], 1) == -1
''', "The search range halves each step, so it takes O(log n) comparisons.",
     "Arama aralığı her adımda yarıya iner; bu yüzden O(log n) karşılaştırma yeterlidir.",
     bug='''
def binary_search(items, target):
    lo, hi = 0, len(items)
    while lo <= hi:
        mid = (lo + hi) // 2
        if items[mid] == target:
            return mid
        if items[mid] < target:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1
''', cause_en="`hi` starts at `len(items)`, so `items[mid]` can index one past the end (IndexError); start at `len(items) - 1`.",
     cause_tr="`hi` değeri `len(items)` ile başladığı için `items[mid]` listenin dışına taşabilir (IndexError); `len(items) - 1` ile başlat.")

task("run_length_encode", "Write run-length encoding for a string: 'aaab' -> 'a3b1'.",
     "Bir metin için tekrar uzunluğu kodlaması yaz: 'aaab' -> 'a3b1'.",
     '''
from itertools import groupby


def run_length_encode(text):
    return "".join(f"{ch}{len(list(group))}" for ch, group in groupby(text))
''', '''
assert run_length_encode("aaab") == "a3b1"
assert run_length_encode("") == ""
''', "groupby yields runs of equal characters; each run becomes the character plus its length.",
     "groupby aynı karakterlerin ardışık gruplarını verir; her grup karakter ve uzunluğuna dönüşür.")

task("celsius_to_fahrenheit", "Convert a temperature from Celsius to Fahrenheit.",
     "Santigrat dereceyi Fahrenhayta çeviren bir fonksiyon yaz.",
     '''
def celsius_to_fahrenheit(c):
    return c * 9 / 5 + 32
''', '''
assert celsius_to_fahrenheit(100) == 212
assert celsius_to_fahrenheit(-40) == -40
assert abs(celsius_to_fahrenheit(37) - 98.6) < 1e-9
''', "F = C × 9/5 + 32.", "F = C × 9/5 + 32 formülü kullanılır.",
     bug='''
def celsius_to_fahrenheit(c):
    return c * 9 // 5 + 32
''', cause_en="`//` is floor division and loses the fraction (37 °C gives 98 instead of 98.6); use `/`.",
     cause_tr="`//` tam sayı bölmesidir ve küsuratı atar (37 °C için 98.6 yerine 98 çıkar); `/` kullan.")

task("add_vat", "Write a function that adds VAT to a net price with a given rate (default 20%) and rounds to 2 decimals.",
     "Net fiyata verilen oranda KDV ekleyen (varsayılan %20) ve sonucu iki basamağa yuvarlayan bir fonksiyon yaz.",
     '''
def add_vat(net, rate=0.20):
    if net < 0 or rate < 0:
        raise ValueError("price and rate must be non-negative")
    return round(net * (1 + rate), 2)
''', '''
assert add_vat(100) == 120.0
assert add_vat(50, 0.10) == 55.0
''', "The gross price is net × (1 + rate), rounded to cents; negative input is refused.",
     "Brüt fiyat net × (1 + oran) olarak hesaplanır ve kuruşa yuvarlanır; negatif değer reddedilir.")

task("validate_tc_kimlik", "Write a function that checks a Turkish ID number (11 digits, first not 0, the two checksum digits).",
     "Bir T.C. kimlik numarasını doğrulayan fonksiyon yaz (11 hane, ilk hane 0 değil, iki kontrol hanesi).",
     '''
def validate_tc_kimlik(number):
    if len(number) != 11 or not number.isdigit() or number[0] == "0":
        return False
    d = [int(c) for c in number]
    tenth = ((d[0] + d[2] + d[4] + d[6] + d[8]) * 7 - (d[1] + d[3] + d[5] + d[7])) % 10
    eleventh = sum(d[:10]) % 10
    return d[9] == tenth and d[10] == eleventh
''', '''
assert validate_tc_kimlik("10000000146") is True
assert validate_tc_kimlik("10000000145") is False
assert validate_tc_kimlik("01234567890") is False
''', "The 10th digit comes from the odd and even position sums, the 11th from the sum of the first ten.",
     "10. hane tek ve çift sıradaki hanelerin toplamından, 11. hane ilk on hanenin toplamından hesaplanır.")

task("turkish_upper", "Write a function that upper-cases Turkish text correctly (i -> İ, ı -> I).",
     "Türkçe metni doğru büyük harfe çeviren bir fonksiyon yaz (i -> İ, ı -> I).",
     '''
def turkish_upper(text):
    return text.replace("i", "İ").replace("ı", "I").upper()
''', '''
assert turkish_upper("istanbul ılık") == "İSTANBUL ILIK"
''', "Python's upper() maps i to I; replacing i and ı first gives the Turkish letters.",
     "Python'un upper() fonksiyonu i harfini I yapar; önce i ve ı değiştirilince Türkçe harfler doğru çıkar.")

task("slugify_tr", "Write a function that turns a Turkish title into a URL slug: 'Çay ve Şeker!' -> 'cay-ve-seker'.",
     "Türkçe bir başlığı URL kısaltmasına çeviren fonksiyon yaz: 'Çay ve Şeker!' -> 'cay-ve-seker'.",
     '''
import re

_MAP = str.maketrans("çğıöşüÇĞİÖŞÜ", "cgiosuCGIOSU")


def slugify_tr(title):
    ascii_text = title.translate(_MAP).lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
''', '''
assert slugify_tr("Çay ve Şeker!") == "cay-ve-seker"
assert slugify_tr("  İyi Günler  ") == "iyi-gunler"
''', "Turkish letters are mapped to ASCII, then every run of other characters becomes one dash.",
     "Türkçe harfler ASCII karşılıklarına çevrilir, diğer karakter dizileri tek bir tireye dönüşür.")

task("dedupe_keep_order", "Remove duplicates from a list while keeping the first occurrence order.",
     "Bir listedeki tekrarları, ilk görülme sırasını koruyarak kaldır.",
     '''
def dedupe_keep_order(items):
    seen = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out
''', '''
assert dedupe_keep_order([3, 1, 3, 2, 1]) == [3, 1, 2]
''', "A set remembers what was seen; the output list keeps the original order.",
     "Görülenler bir kümede tutulur; çıktı listesi orijinal sırayı korur.",
     bug='''
def dedupe_keep_order(items):
    return list(set(items))
''', cause_en="A set has no order, so `list(set(items))` may reorder the items; track seen items and keep a list.",
     cause_tr="Kümenin sırası yoktur; `list(set(items))` sırayı bozabilir. Görülenleri ayrı tut ve bir liste oluştur.")

task("second_largest", "Return the second largest distinct number in a list, or None if there is none.",
     "Bir listedeki ikinci en büyük farklı sayıyı döndür; yoksa None döndür.",
     '''
def second_largest(numbers):
    distinct = sorted(set(numbers), reverse=True)
    return distinct[1] if len(distinct) > 1 else None
''', '''
assert second_largest([4, 1, 4, 3]) == 3
assert second_largest([7, 7]) is None
''', "Duplicates are removed with set, the values sorted in descending order and the second one taken.",
     "Tekrarlar set ile atılır, değerler büyükten küçüğe sıralanır ve ikincisi alınır.")

task("rotate_list", "Rotate a list to the right by k positions.",
     "Bir listeyi sağa doğru k adım döndür.",
     '''
def rotate_list(items, k):
    if not items:
        return []
    k %= len(items)
    return items[-k:] + items[:-k] if k else list(items)
''', '''
assert rotate_list([1, 2, 3, 4], 1) == [4, 1, 2, 3]
assert rotate_list([1, 2, 3], 5) == [2, 3, 1]
''', "k is reduced modulo the length, then the last k items move to the front.",
     "k önce uzunluğa göre mod alınır, sonra son k eleman başa taşınır.")

task("merge_intervals", "Merge overlapping intervals given as (start, end) pairs.",
     "(başlangıç, bitiş) çiftleri olarak verilen çakışan aralıkları birleştir.",
     '''
def merge_intervals(intervals):
    merged = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [tuple(x) for x in merged]
''', '''
assert merge_intervals([(1, 3), (2, 6), (8, 10)]) == [(1, 6), (8, 10)]
assert merge_intervals([]) == []
''', "After sorting by start, an interval either extends the last merged one or starts a new one.",
     "Başlangıca göre sıralandıktan sonra her aralık ya son birleşik aralığı uzatır ya da yeni bir aralık başlatır.")

task("shortest_path_grid", "Find the length of the shortest path in a grid of 0 (free) and 1 (wall) from top-left to bottom-right, moving in 4 directions; -1 if impossible.",
     "0 (boş) ve 1'lerden (duvar) oluşan bir ızgarada sol üstten sağ alta 4 yönde en kısa yolun uzunluğunu bul; yol yoksa -1 döndür.",
     '''
from collections import deque


def shortest_path_grid(grid):
    rows, cols = len(grid), len(grid[0])
    if grid[0][0] or grid[rows - 1][cols - 1]:
        return -1
    queue = deque([(0, 0, 0)])
    seen = {(0, 0)}
    while queue:
        r, c, d = queue.popleft()
        if (r, c) == (rows - 1, cols - 1):
            return d
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            nr, nc = r + dr, c + dc
            if 0 <= nr < rows and 0 <= nc < cols and not grid[nr][nc] and (nr, nc) not in seen:
                seen.add((nr, nc))
                queue.append((nr, nc, d + 1))
    return -1
''', '''
assert shortest_path_grid([[0, 0], [1, 0]]) == 2
assert shortest_path_grid([[0, 1], [1, 0]]) == -1
''', "Breadth-first search visits cells in order of distance, so the first arrival is the shortest path.",
     "Genişlik öncelikli arama hücreleri uzaklık sırasıyla gezer; hedefe ilk varış en kısa yoldur.")

task("topological_sort", "Return a topological order of a directed acyclic graph given as a dict of node -> list of successors.",
     "Düğüm -> ardıllar listesi sözlüğü olarak verilen yönlü, döngüsüz bir grafın topolojik sırasını döndür.",
     '''
def topological_sort(graph):
    indegree = {node: 0 for node in graph}
    for targets in graph.values():
        for t in targets:
            indegree[t] = indegree.get(t, 0) + 1
    ready = sorted(n for n, d in indegree.items() if d == 0)
    order = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for t in graph.get(node, []):
            indegree[t] -= 1
            if indegree[t] == 0:
                ready.append(t)
    if len(order) != len(indegree):
        raise ValueError("graph has a cycle")
    return order
''', '''
assert topological_sort({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}) == ["a", "b", "c", "d"]
''', "Kahn's algorithm: repeatedly take nodes without incoming edges; leftovers mean a cycle.",
     "Kahn algoritması: gelen kenarı olmayan düğümler sırayla alınır; geriye düğüm kalırsa döngü vardır.")

task("power_set", "Return all subsets of a list.", "Bir listenin bütün alt kümelerini döndür.",
     '''
def power_set(items):
    subsets = [[]]
    for item in items:
        subsets += [s + [item] for s in subsets]
    return subsets
''', '''
assert sorted(map(sorted, power_set([1, 2]))) == [[], [1], [1, 2], [2]]
assert len(power_set([1, 2, 3])) == 8
''', "Each new item doubles the list: every existing subset appears with and without it.",
     "Her yeni eleman listeyi ikiye katlar: mevcut her alt küme o elemanla ve onsuz yer alır.")

task("leap_year", "Write a function that tells whether a year is a leap year.",
     "Bir yılın artık yıl olup olmadığını söyleyen fonksiyon yaz.",
     '''
def leap_year(year):
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
''', '''
assert leap_year(2024) and leap_year(2000)
assert not leap_year(1900) and not leap_year(2023)
''', "Divisible by 4, except centuries, unless divisible by 400.",
     "4'e bölünen yıllar artıktır; 100'e bölünenler değildir, ancak 400'e bölünenler yine artıktır.",
     bug='''
def leap_year(year):
    return year % 4 == 0
''', cause_en="Century years such as 1900 are not leap years unless divisible by 400; add the 100/400 rule.",
     cause_tr="1900 gibi yüzyıl yılları 400'e bölünmedikçe artık yıl değildir; 100/400 kuralını ekle.")

task("days_between", "Return the number of days between two dates given as 'YYYY-MM-DD' strings.",
     "'YYYY-AA-GG' biçimindeki iki tarih arasındaki gün sayısını döndür.",
     '''
from datetime import date


def days_between(a, b):
    return abs((date.fromisoformat(b) - date.fromisoformat(a)).days)
''', '''
assert days_between("2024-01-01", "2024-03-01") == 60
assert days_between("2024-03-01", "2024-01-01") == 60
''', "date.fromisoformat parses the strings; the difference is a timedelta whose days are taken.",
     "date.fromisoformat metinleri tarihe çevirir; farkları bir timedelta'dır ve gün sayısı alınır.")

task("age_on", "Compute a person's age in full years on a given date.",
     "Bir kişinin belirli bir tarihteki tam yaşını hesapla.",
     '''
from datetime import date


def age_on(birth, today):
    years = today.year - birth.year
    if (today.month, today.day) < (birth.month, birth.day):
        years -= 1
    return years
''', '''
assert age_on(date(1990, 5, 20), date(2024, 5, 19)) == 33
assert age_on(date(1990, 5, 20), date(2024, 5, 20)) == 34
''', "Subtract the years, then one less if the birthday has not come yet this year.",
     "Yıllar çıkarılır; bu yılki doğum günü henüz gelmediyse bir eksiltilir.")

task("csv_to_dicts", "Parse CSV text with a header line into a list of dicts.",
     "Başlık satırı olan CSV metnini sözlüklerden oluşan bir listeye çevir.",
     '''
import csv
import io


def csv_to_dicts(text):
    return list(csv.DictReader(io.StringIO(text)))
''', '''
rows = csv_to_dicts("ad,yas\\nAyşe,30\\nCan,25\\n")
assert rows == [{"ad": "Ayşe", "yas": "30"}, {"ad": "Can", "yas": "25"}]
''', "csv.DictReader uses the first line as keys; StringIO lets it read from a string.",
     "csv.DictReader ilk satırı anahtar olarak kullanır; StringIO metni dosya gibi okutur.")

task("word_wrap", "Wrap text so that no line is longer than width characters (words are not split).",
     "Metni, hiçbir satır width karakteri geçmeyecek şekilde kelimeleri bölmeden satırlara ayır.",
     '''
def word_wrap(text, width):
    lines, current = [], ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        lines.append(current)
    return lines
''', '''
assert word_wrap("bir iki üç dört beş", 7) == ["bir iki", "üç dört", "beş"]
''', "Words are added to the current line until the next one would exceed the width.",
     "Kelimeler, bir sonraki genişliği aşana kadar mevcut satıra eklenir.")

task("mask_email", "Mask an e-mail address: keep the first letter of the name and the domain: 'ayse@ornek.com' -> 'a***@ornek.com'.",
     "Bir e-posta adresini maskele: adın ilk harfi ve alan adı kalsın: 'ayse@ornek.com' -> 'a***@ornek.com'.",
     '''
def mask_email(email):
    name, sep, domain = email.partition("@")
    if not sep or not name:
        raise ValueError("not an e-mail address")
    return name[0] + "***@" + domain
''', '''
assert mask_email("ayse@ornek.com") == "a***@ornek.com"
''', "partition splits at the first @; everything but the first letter of the name is hidden.",
     "partition ilk @ işaretinden böler; adın ilk harfi dışındaki kısmı gizlenir.")

task("password_strength", "Rate a password: return 'weak', 'medium' or 'strong' from length, digits, upper/lower case and symbols.",
     "Bir parolayı değerlendir: uzunluk, rakam, büyük/küçük harf ve sembollere göre 'zayıf', 'orta' ya da 'güçlü' döndür.",
     '''
import string


def password_strength(password):
    score = sum([
        len(password) >= 8,
        any(c.isdigit() for c in password),
        any(c.isupper() for c in password) and any(c.islower() for c in password),
        any(c in string.punctuation for c in password),
    ])
    return "weak" if score <= 1 else "medium" if score <= 3 else "strong"
''', '''
assert password_strength("abc") == "weak"
assert password_strength("Abcdefg1") == "medium"
assert password_strength("Abcdefg1!") == "strong"
''', "Each satisfied rule adds a point; the total decides the label.",
     "Sağlanan her kural bir puan ekler; toplam puan etiketi belirler.")

task("parse_query", "Parse a URL query string like 'a=1&b=x' into a dict (values as strings).",
     "'a=1&b=x' gibi bir URL sorgu metnini sözlüğe çevir (değerler metin olarak).",
     '''
from urllib.parse import parse_qsl


def parse_query(query):
    return dict(parse_qsl(query.lstrip("?")))
''', '''
assert parse_query("?a=1&b=x") == {"a": "1", "b": "x"}
assert parse_query("q=%C3%A7ay") == {"q": "çay"}
''', "parse_qsl decodes percent-escapes and returns key/value pairs.",
     "parse_qsl yüzde kodlamasını çözer ve anahtar/değer çiftleri döndürür.")

task("flatten_dict", "Flatten a nested dict into dotted keys: {'a': {'b': 1}} -> {'a.b': 1}.",
     "İç içe bir sözlüğü noktalı anahtarlara düzleştir: {'a': {'b': 1}} -> {'a.b': 1}.",
     '''
def flatten_dict(data, prefix=""):
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_dict(value, name + "."))
        else:
            flat[name] = value
    return flat
''', '''
assert flatten_dict({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}
''', "Nested dicts are flattened recursively with the parent key as prefix.",
     "İç içe sözlükler, üst anahtar önek yapılarak özyinelemeli düzleştirilir.")

task("snake_to_camel", "Convert snake_case to camelCase.", "snake_case bir ismi camelCase'e çevir.",
     '''
def snake_to_camel(name):
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)
''', '''
assert snake_to_camel("kullanici_adi_soyadi") == "kullaniciAdiSoyadi"
''', "The first part stays, the others are capitalised and joined.",
     "İlk parça aynen kalır, diğerlerinin baş harfi büyütülüp birleştirilir.")

task("camel_to_snake", "Convert camelCase to snake_case.", "camelCase bir ismi snake_case'e çevir.",
     '''
import re


def camel_to_snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
''', '''
assert camel_to_snake("httpResponseCode") == "http_response_code"
''', "An underscore is inserted before every capital letter that is not at the start.",
     "Başta olmayan her büyük harfin önüne alt çizgi eklenir, sonra hepsi küçültülür.")

task("longest_common_prefix", "Return the longest common prefix of a list of strings.",
     "Bir metin listesinin en uzun ortak önekini döndür.",
     '''
import os


def longest_common_prefix(words):
    return os.path.commonprefix(words) if words else ""
''', '''
assert longest_common_prefix(["kitaplık", "kitapçı", "kitap"]) == "kitap"
assert longest_common_prefix([]) == ""
''', "os.path.commonprefix compares the strings character by character.",
     "os.path.commonprefix metinleri karakter karakter karşılaştırır.")

task("is_anagram", "Tell whether two words are anagrams of each other (ignore case and spaces).",
     "İki kelimenin birbirinin anagramı olup olmadığını söyle (harf büyüklüğü ve boşluklar önemsiz).",
     '''
from collections import Counter


def is_anagram(a, b):
    clean = lambda s: Counter(s.replace(" ", "").lower())
    return clean(a) == clean(b)
''', '''
assert is_anagram("Listen", "Silent")
assert not is_anagram("abc", "abd")
''', "Two words are anagrams when their letter counts are equal.",
     "Harf sayıları aynı olan iki kelime birbirinin anagramıdır.")

task("matrix_multiply", "Multiply two matrices given as lists of lists.",
     "Liste listesi olarak verilen iki matrisi çarp.",
     '''
def matrix_multiply(a, b):
    if len(a[0]) != len(b):
        raise ValueError("inner dimensions differ")
    return [[sum(x * y for x, y in zip(row, col)) for col in zip(*b)] for row in a]
''', '''
assert matrix_multiply([[1, 2], [3, 4]], [[5], [6]]) == [[17], [39]]
''', "zip(*b) gives the columns of b; each cell is a row-column dot product.",
     "zip(*b) b'nin sütunlarını verir; her hücre bir satır ile bir sütunun iç çarpımıdır.",
     bug='''
def matrix_multiply(a, b):
    return [[sum(x * y for x, y in zip(row, col)) for col in b] for row in a]
''', cause_en="Iterating `b` gives its rows, not its columns; use `zip(*b)` to get the columns.",
     cause_tr="`b` üzerinde dönmek satırları verir, sütunları değil; sütunlar için `zip(*b)` kullan.")

task("rotate_matrix", "Rotate a square matrix 90 degrees clockwise.", "Kare bir matrisi saat yönünde 90 derece döndür.",
     '''
def rotate_matrix(m):
    return [list(row) for row in zip(*m[::-1])]
''', '''
assert rotate_matrix([[1, 2], [3, 4]]) == [[3, 1], [4, 2]]
''', "Reversing the rows and then transposing turns the matrix clockwise.",
     "Satırlar ters çevrilip devrik alınınca matris saat yönünde döner.")

task("spiral_order", "Return the elements of a matrix in spiral order.", "Bir matrisin elemanlarını sarmal sırayla döndür.",
     '''
def spiral_order(m):
    out = []
    m = [list(r) for r in m]
    while m:
        out += m.pop(0)
        m = [list(r) for r in zip(*m)][::-1]
    return out
''', '''
assert spiral_order([[1, 2, 3], [4, 5, 6], [7, 8, 9]]) == [1, 2, 3, 6, 9, 8, 7, 4, 5]
''', "Take the top row, rotate the rest counter-clockwise, repeat.",
     "Üst satır alınır, kalan matris saat yönünün tersine döndürülür ve işlem tekrarlanır.")

task("two_sum", "Given a list and a target, return the indices of two numbers that add up to the target.",
     "Bir liste ve hedef toplam verildiğinde, toplamı hedefi veren iki sayının indekslerini döndür.",
     '''
def two_sum(numbers, target):
    seen = {}
    for i, n in enumerate(numbers):
        if target - n in seen:
            return seen[target - n], i
        seen[n] = i
    return None
''', '''
assert two_sum([2, 7, 11, 15], 9) == (0, 1)
assert two_sum([1, 2], 10) is None
''', "A dict maps each value to its index, so the complement is found in one pass.",
     "Bir sözlük her değeri indeksine eşler; tamamlayıcı sayı tek geçişte bulunur.")

task("max_profit", "Given daily prices, return the best profit from one buy followed by one sell.",
     "Günlük fiyatlar verildiğinde, bir alış ve sonraki bir satıştan elde edilebilecek en yüksek kârı döndür.",
     '''
def max_profit(prices):
    best, lowest = 0, float("inf")
    for p in prices:
        lowest = min(lowest, p)
        best = max(best, p - lowest)
    return best
''', '''
assert max_profit([7, 1, 5, 3, 6, 4]) == 5
assert max_profit([5, 4, 3]) == 0
''', "Track the lowest price so far; the best profit is the largest price minus that minimum.",
     "O ana kadarki en düşük fiyat tutulur; en iyi kâr, fiyat ile bu en düşük değer arasındaki en büyük farktır.")

task("climb_stairs", "Count the ways to climb n stairs taking 1 or 2 steps at a time.",
     "Her seferinde 1 ya da 2 basamak çıkarak n basamaklı merdivenin kaç farklı yolla çıkılacağını hesapla.",
     '''
def climb_stairs(n):
    a, b = 1, 1
    for _ in range(n):
        a, b = b, a + b
    return a
''', '''
assert climb_stairs(1) == 1 and climb_stairs(2) == 2 and climb_stairs(5) == 8
''', "Ways(n) = ways(n-1) + ways(n-2): the last step is either 1 or 2.",
     "Yollar(n) = yollar(n-1) + yollar(n-2): son adım ya 1 ya 2 basamaktır.")

task("min_coins", "Return the minimum number of coins needed to make an amount, or -1 if impossible.",
     "Bir tutarı oluşturmak için gereken en az madeni para sayısını döndür; mümkün değilse -1.",
     '''
def min_coins(coins, amount):
    best = [0] + [float("inf")] * amount
    for value in range(1, amount + 1):
        for c in coins:
            if c <= value:
                best[value] = min(best[value], best[value - c] + 1)
    return best[amount] if best[amount] != float("inf") else -1
''', '''
assert min_coins([1, 5, 10, 25], 30) == 2
assert min_coins([2], 3) == -1
''', "Dynamic programming: the best for each amount uses the best for the amount minus one coin.",
     "Dinamik programlama: her tutar için en iyi sonuç, bir para eksik tutarın en iyi sonucundan gelir.")

task("edit_distance", "Compute the Levenshtein edit distance between two strings.",
     "İki metin arasındaki Levenshtein düzenleme uzaklığını hesapla.",
     '''
def edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]
''', '''
assert edit_distance("kitap", "kitabı") == 2
assert edit_distance("", "abc") == 3
''', "Each cell is the cheapest of delete, insert or substitute; only two rows are kept.",
     "Her hücre silme, ekleme ya da değiştirmeden en ucuz olanıdır; yalnızca iki satır tutulur.")

task("unique_grid_paths", "Count the paths from top-left to bottom-right of an m×n grid moving only right or down.",
     "m×n'lik bir ızgarada yalnızca sağa ya da aşağı giderek sol üstten sağ alta kaç yol olduğunu hesapla.",
     '''
from math import comb


def unique_grid_paths(m, n):
    return comb(m + n - 2, m - 1)
''', '''
assert unique_grid_paths(3, 7) == 28
assert unique_grid_paths(1, 1) == 1
''', "A path is a choice of which of the m+n-2 moves go down: a binomial coefficient.",
     "Her yol, m+n-2 hamleden hangilerinin aşağı olduğunun seçimidir: bir binom katsayısı.")

task("knapsack", "Solve the 0/1 knapsack problem: maximum value within a weight limit.",
     "0/1 sırt çantası problemini çöz: ağırlık sınırı içinde en yüksek değer.",
     '''
def knapsack(items, capacity):
    best = [0] * (capacity + 1)
    for weight, value in items:
        for w in range(capacity, weight - 1, -1):
            best[w] = max(best[w], best[w - weight] + value)
    return best[capacity]
''', '''
assert knapsack([(1, 1), (3, 4), (4, 5), (5, 7)], 7) == 9
''', "The capacity loop runs backwards so each item is used at most once.",
     "Kapasite döngüsü geriye doğru çalışır; böylece her eşya en fazla bir kez kullanılır.")

task("Stack", "Write a Stack class with push, pop, peek and is_empty.",
     "push, pop, peek ve is_empty metotları olan bir Stack sınıfı yaz.",
     '''
class Stack:
    def __init__(self):
        self._items = []

    def push(self, item):
        self._items.append(item)

    def pop(self):
        if not self._items:
            raise IndexError("pop from empty stack")
        return self._items.pop()

    def peek(self):
        return self._items[-1] if self._items else None

    def is_empty(self):
        return not self._items
''', '''
s = Stack()
s.push(1)
s.push(2)
assert s.peek() == 2 and s.pop() == 2 and s.pop() == 1 and s.is_empty()
''', "A list is used; append and pop at the end are O(1).",
     "Bir liste kullanılır; sona ekleme ve sondan çıkarma O(1) sürer.")

task("Queue", "Write a Queue class with enqueue, dequeue and len().",
     "enqueue, dequeue metotları olan ve len() ile boyutu alınabilen bir Queue sınıfı yaz.",
     '''
from collections import deque


class Queue:
    def __init__(self):
        self._items = deque()

    def enqueue(self, item):
        self._items.append(item)

    def dequeue(self):
        if not self._items:
            raise IndexError("dequeue from empty queue")
        return self._items.popleft()

    def __len__(self):
        return len(self._items)
''', '''
q = Queue()
q.enqueue("a")
q.enqueue("b")
assert q.dequeue() == "a" and len(q) == 1
''', "deque gives O(1) appends and pops at both ends.",
     "deque her iki uçta da O(1) ekleme ve çıkarma sağlar.",
     bug='''
class Queue:
    def __init__(self):
        self._items = []

    def enqueue(self, item):
        self._items.append(item)

    def dequeue(self):
        return self._items.pop()

    def __len__(self):
        return len(self._items)
''', cause_en="`list.pop()` removes the last item, so this behaves like a stack (LIFO); a queue must take from the front: `popleft()` on a deque.",
     cause_tr="`list.pop()` son elemanı çıkarır, yani bu bir yığın (LIFO) gibi davranır; kuyruk baştan almalıdır: deque ile `popleft()`.")

task("BankAccount", "Write a BankAccount class with deposit, withdraw (refusing overdrafts) and a balance property.",
     "deposit, withdraw (bakiyeden fazla çekimi reddeden) ve balance özelliği olan bir BankAccount sınıfı yaz.",
     '''
class BankAccount:
    def __init__(self, owner, balance=0):
        self.owner = owner
        self._balance = balance

    @property
    def balance(self):
        return self._balance

    def deposit(self, amount):
        if amount <= 0:
            raise ValueError("amount must be positive")
        self._balance += amount

    def withdraw(self, amount):
        if amount > self._balance:
            raise ValueError("insufficient funds")
        self._balance -= amount
''', '''
acc = BankAccount("Ayşe", 100)
acc.deposit(50)
acc.withdraw(30)
assert acc.balance == 120
try:
    acc.withdraw(500)
    raise AssertionError("overdraft allowed")
except ValueError:
    pass
''', "The balance is private and read through a property; invalid operations raise ValueError.",
     "Bakiye gizli tutulur ve bir property ile okunur; geçersiz işlemler ValueError fırlatır.")

task("LRUCache", "Implement an LRU cache class with get and put and a fixed capacity.",
     "Sabit kapasiteli, get ve put metotları olan bir LRU önbellek sınıfı yaz.",
     '''
from collections import OrderedDict


class LRUCache:
    def __init__(self, capacity):
        self.capacity = capacity
        self._data = OrderedDict()

    def get(self, key):
        if key not in self._data:
            return None
        self._data.move_to_end(key)
        return self._data[key]

    def put(self, key, value):
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self.capacity:
            self._data.popitem(last=False)
''', '''
c = LRUCache(2)
c.put("a", 1)
c.put("b", 2)
c.get("a")
c.put("c", 3)
assert c.get("b") is None and c.get("a") == 1 and c.get("c") == 3
''', "OrderedDict keeps use order; the least recently used key is at the front and is evicted first.",
     "OrderedDict kullanım sırasını tutar; en uzun süredir kullanılmayan anahtar baştadır ve önce atılır.")

task("reverse_linked_list", "Reverse a singly linked list (nodes with value and next).",
     "Tek yönlü bağlı bir listeyi (value ve next alanlı düğümler) ters çevir.",
     '''
class Node:
    def __init__(self, value, next=None):
        self.value = value
        self.next = next


def reverse_linked_list(head):
    prev = None
    while head:
        head.next, prev, head = prev, head, head.next
    return prev


def to_list(head):
    out = []
    while head:
        out.append(head.value)
        head = head.next
    return out
''', '''
assert to_list(reverse_linked_list(Node(1, Node(2, Node(3))))) == [3, 2, 1]
assert reverse_linked_list(None) is None
''', "Each node's next pointer is turned to the previous node while walking the list once.",
     "Liste bir kez dolaşılırken her düğümün next işaretçisi bir önceki düğüme çevrilir.")

task("BinarySearchTree", "Write a binary search tree class with insert, contains and in-order traversal.",
     "insert, contains ve sıralı dolaşma (in-order) metotları olan bir ikili arama ağacı sınıfı yaz.",
     '''
class BinarySearchTree:
    def __init__(self):
        self.root = None

    def insert(self, value):
        node = {"v": value, "l": None, "r": None}
        if self.root is None:
            self.root = node
            return
        cur = self.root
        while True:
            side = "l" if value < cur["v"] else "r"
            if cur[side] is None:
                cur[side] = node
                return
            cur = cur[side]

    def contains(self, value):
        cur = self.root
        while cur:
            if value == cur["v"]:
                return True
            cur = cur["l"] if value < cur["v"] else cur["r"]
        return False

    def in_order(self):
        out = []

        def walk(n):
            if n:
                walk(n["l"])
                out.append(n["v"])
                walk(n["r"])

        walk(self.root)
        return out
''', '''
t = BinarySearchTree()
for x in [5, 2, 8, 1]:
    t.insert(x)
assert t.in_order() == [1, 2, 5, 8] and t.contains(8) and not t.contains(3)
''', "Smaller values go left, larger right; in-order traversal yields them sorted.",
     "Küçük değerler sola, büyükler sağa gider; sıralı dolaşma değerleri küçükten büyüğe verir.")

task("timer", "Write a context manager that measures how long a block takes.",
     "Bir kod bloğunun ne kadar sürdüğünü ölçen bir context manager yaz.",
     '''
import time
from contextlib import contextmanager


@contextmanager
def timer(result):
    start = time.perf_counter()
    try:
        yield
    finally:
        result["seconds"] = time.perf_counter() - start
''', '''
r = {}
with timer(r):
    sum(range(1000))
assert r["seconds"] >= 0
''', "perf_counter is read before and after; finally records the time even if the block fails.",
     "perf_counter blok öncesi ve sonrası okunur; finally blok hata verse bile süreyi kaydeder.")

task("retry", "Write a decorator that retries a function up to n times when it raises an exception.",
     "Bir fonksiyon hata fırlattığında onu en fazla n kez yeniden deneyen bir dekoratör yaz.",
     '''
import functools


def retry(times):
    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            for attempt in range(times):
                try:
                    return func(*args, **kwargs)
                except Exception:
                    if attempt == times - 1:
                        raise
        return wrapper
    return decorate
''', '''
calls = []


@retry(3)
def flaky():
    calls.append(1)
    if len(calls) < 3:
        raise RuntimeError("not yet")
    return "ok"


assert flaky() == "ok" and len(calls) == 3
''', "The wrapper catches the exception and tries again; the last failure is re-raised.",
     "Sarmalayıcı hatayı yakalayıp yeniden dener; son denemedeki hata tekrar fırlatılır.")

task("memoize", "Write a memoize decorator that caches results by arguments.",
     "Sonuçları argümanlara göre önbelleğe alan bir memoize dekoratörü yaz.",
     '''
import functools


def memoize(func):
    cache = {}

    @functools.wraps(func)
    def wrapper(*args):
        if args not in cache:
            cache[args] = func(*args)
        return cache[args]

    return wrapper
''', '''
calls = []


@memoize
def square(x):
    calls.append(x)
    return x * x


assert square(4) == 16 and square(4) == 16 and calls == [4]
''', "Results are stored in a dict keyed by the argument tuple; repeated calls skip the work.",
     "Sonuçlar argüman demetiyle anahtarlanan bir sözlükte tutulur; tekrar eden çağrılar hesap yapmaz.")

task("read_chunks", "Write a generator that yields a file's lines in batches of n.",
     "Bir dosyanın satırlarını n'erli gruplar halinde veren bir üreteç (generator) yaz.",
     '''
def read_chunks(path, n):
    batch = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            batch.append(line.rstrip("\\n"))
            if len(batch) == n:
                yield batch
                batch = []
    if batch:
        yield batch
''', '''
with open("notes.txt", "w", encoding="utf-8") as fh:
    fh.write("a\\nb\\nc\\n")
assert list(read_chunks("notes.txt", 2)) == [["a", "b"], ["c"]]
''', "The file is read lazily; full batches are yielded and the remainder at the end.",
     "Dosya tembel okunur; dolu gruplar sırayla verilir, kalan satırlar en sonda döner.")

task("Point", "Write a dataclass Point with a distance_to method.",
     "distance_to metodu olan bir Point veri sınıfı (dataclass) yaz.",
     '''
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    x: float
    y: float

    def distance_to(self, other):
        return math.hypot(self.x - other.x, self.y - other.y)
''', '''
assert Point(0, 0).distance_to(Point(3, 4)) == 5
assert Point(1, 2) == Point(1, 2)
''', "dataclass generates __init__ and __eq__; math.hypot computes the Euclidean distance.",
     "dataclass __init__ ve __eq__ metotlarını üretir; math.hypot Öklid uzaklığını hesaplar.")

task("sort_people", "Sort people (dicts with name and age) by age descending, then name ascending.",
     "Kişileri (name ve age içeren sözlükler) önce yaşa göre azalan, sonra isme göre artan sırala.",
     '''
def sort_people(people):
    return sorted(people, key=lambda p: (-p["age"], p["name"]))
''', '''
people = [{"name": "Can", "age": 30}, {"name": "Ali", "age": 30}, {"name": "Ece", "age": 40}]
assert [p["name"] for p in sort_people(people)] == ["Ece", "Ali", "Can"]
''', "The key tuple sorts by negative age first, then by name.",
     "Anahtar demeti önce eksi yaşa, sonra isme göre sıralar.")

task("percent_change", "Return the percentage change from an old value to a new one, rounded to 1 decimal.",
     "Eski bir değerden yeni değere yüzde değişimi bir ondalık basamağa yuvarlayarak döndür.",
     '''
def percent_change(old, new):
    if old == 0:
        raise ValueError("old value must not be zero")
    return round((new - old) / old * 100, 1)
''', '''
assert percent_change(80, 100) == 25.0
assert percent_change(100, 80) == -20.0
''', "(new − old) / old × 100; a zero base is refused.",
     "(yeni − eski) / eski × 100 hesaplanır; sıfır başlangıç değeri reddedilir.",
     bug='''
def percent_change(old, new):
    return round((new - old) / new * 100, 1)
''', cause_en="The change must be divided by the old value, not the new one (80→100 is +25 %, not +20 %); dividing by `new` also fails when new is 0.",
     cause_tr="Değişim yeni değere değil eski değere bölünmeli (80→100 %20 değil %25 artıştır); `new` 0 olunca da hata verir.")

task("compound_interest", "Compute the final amount with yearly compound interest.",
     "Yıllık bileşik faizle vade sonundaki tutarı hesapla.",
     '''
def compound_interest(principal, rate, years):
    return round(principal * (1 + rate) ** years, 2)
''', '''
assert compound_interest(1000, 0.10, 2) == 1210.0
''', "Each year multiplies the amount by (1 + rate).",
     "Her yıl tutar (1 + faiz oranı) ile çarpılır.")

task("bmi", "Compute body-mass index from weight in kg and height in metres, rounded to 1 decimal.",
     "Kilogram cinsinden ağırlık ve metre cinsinden boydan vücut kitle indeksini hesapla (bir ondalık).",
     '''
def bmi(weight_kg, height_m):
    if height_m <= 0:
        raise ValueError("height must be positive")
    return round(weight_kg / height_m ** 2, 1)
''', '''
assert bmi(70, 1.75) == 22.9
''', "BMI = weight / height².", "VKİ = ağırlık / boy² formülüyle hesaplanır.",
     bug='''
def bmi(weight_kg, height_m):
    return round(weight_kg / height_m * 2, 1)
''', cause_en="`height_m * 2` doubles the height instead of squaring it; use `height_m ** 2`.",
     cause_tr="`height_m * 2` boyu karesini almak yerine ikiyle çarpar; `height_m ** 2` kullan.")

task("class_average", "Given a dict of student -> list of grades, return each student's average rounded to 2 decimals.",
     "Öğrenci -> not listesi sözlüğü verildiğinde her öğrencinin ortalamasını iki basamağa yuvarlayarak döndür.",
     '''
def class_average(grades):
    return {name: round(sum(g) / len(g), 2) for name, g in grades.items() if g}
''', '''
assert class_average({"Ayşe": [90, 80], "Can": [70]}) == {"Ayşe": 85.0, "Can": 70.0}
''', "A dict comprehension divides each sum by its count; empty lists are skipped.",
     "Sözlük üreteci her toplamı eleman sayısına böler; boş listeler atlanır.",
     bug='''
def class_average(grades):
    return {name: round(sum(g) / len(grades), 2) for name, g in grades.items()}
''', cause_en="`len(grades)` is the number of students, not of that student's grades; divide by `len(g)`.",
     cause_tr="`len(grades)` öğrenci sayısıdır, o öğrencinin not sayısı değil; `len(g)` ile böl.")

task("time_to_seconds", "Convert 'HH:MM:SS' to a number of seconds.", "'SS:DD:ss' biçimindeki süreyi saniyeye çevir.",
     '''
def time_to_seconds(text):
    h, m, s = (int(x) for x in text.split(":"))
    return h * 3600 + m * 60 + s
''', '''
assert time_to_seconds("01:02:03") == 3723
''', "The three parts are weighted by 3600, 60 and 1.", "Üç parça sırasıyla 3600, 60 ve 1 ile çarpılıp toplanır.",
     bug='''
def time_to_seconds(text):
    h, m, s = text.split(":")
    return h * 3600 + m * 60 + s
''', cause_en="The parts are strings, so `h * 3600` repeats the text and `+ s` concatenates; convert them with int() first.",
     cause_tr="Parçalar metin olduğu için `h * 3600` metni tekrarlar ve `+ s` birleştirir; önce int() ile sayıya çevir.")

task("seconds_to_hms", "Format a number of seconds as 'HH:MM:SS'.", "Saniye cinsinden bir süreyi 'SS:DD:ss' olarak biçimlendir.",
     '''
def seconds_to_hms(total):
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"
''', '''
assert seconds_to_hms(3723) == "01:02:03"
''', "divmod splits hours, then minutes and seconds; :02d pads with zeros.",
     "divmod önce saatleri, sonra dakika ve saniyeleri ayırır; :02d başa sıfır ekler.")

task("human_bytes", "Format a byte count for humans: 1536 -> '1.5 KB'.", "Bir bayt sayısını okunur biçimde yaz: 1536 -> '1.5 KB'.",
     '''
def human_bytes(n):
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
''', '''
assert human_bytes(512) == "512 B"
assert human_bytes(1536) == "1.5 KB"
''', "The value is divided by 1024 until it fits the unit.", "Değer birime sığana kadar 1024'e bölünür.")

task("reverse_words", "Reverse the order of words in a sentence.", "Bir cümledeki kelimelerin sırasını ters çevir.",
     '''
def reverse_words(sentence):
    return " ".join(reversed(sentence.split()))
''', '''
assert reverse_words("ben okula gidiyorum") == "gidiyorum okula ben"
''', "split() gives the words, reversed() flips their order, join puts them back.",
     "split() kelimeleri verir, reversed() sırayı çevirir, join yeniden birleştirir.")

task("truncate_text", "Shorten text to at most n characters, ending with '…' when cut.",
     "Metni en fazla n karaktere kısalt; kesildiyse sonuna '…' koy.",
     '''
def truncate_text(text, n):
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"
''', '''
assert truncate_text("Merhaba dünya", 20) == "Merhaba dünya"
assert truncate_text("Merhaba dünya", 8) == "Merhaba…"
''', "One character is kept for the ellipsis so the result fits in n.",
     "Üç nokta işaretine bir karakter ayrılır; sonuç n karaktere sığar.")

task("luhn_valid", "Check a card number with the Luhn algorithm.", "Bir kart numarasını Luhn algoritmasıyla doğrula.",
     '''
def luhn_valid(number):
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return bool(digits) and total % 10 == 0
''', '''
assert luhn_valid("4539 1488 0343 6467")
assert not luhn_valid("1234 5678 9012 3456")
''', "Every second digit from the right is doubled (minus 9 if above 9); the sum must end in 0.",
     "Sağdan her ikinci hane iki katına çıkarılır (9'dan büyükse 9 çıkarılır); toplam 0 ile bitmelidir.")

task("iban_valid", "Check an IBAN with the mod-97 rule.", "Bir IBAN numarasını mod-97 kuralıyla doğrula.",
     '''
def iban_valid(iban):
    s = iban.replace(" ", "").upper()
    if len(s) < 15 or not s.isalnum():
        return False
    moved = s[4:] + s[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1
''', '''
assert iban_valid("TR33 0006 1005 1978 6457 8413 26")
assert not iban_valid("TR33 0006 1005 1978 6457 8413 27")
''', "The first four characters move to the end, letters become numbers (A=10 …), the result mod 97 must be 1.",
     "İlk dört karakter sona alınır, harfler sayıya çevrilir (A=10 …), sonuç 97'ye bölümünden 1 kalmalıdır.")

task("armstrong", "Tell whether a number equals the sum of its digits each raised to the number of digits.",
     "Bir sayının, basamaklarının basamak sayısı kadar kuvvetlerinin toplamına eşit olup olmadığını söyle.",
     '''
def armstrong(n):
    digits = str(n)
    return n == sum(int(d) ** len(digits) for d in digits)
''', '''
assert armstrong(153) and armstrong(9474)
assert not armstrong(100)
''', "Each digit is raised to the number of digits and the powers are summed.",
     "Her basamak, basamak sayısı kadar kuvvete yükseltilip toplanır.")

task("perfect_number", "Tell whether n is a perfect number (equal to the sum of its proper divisors).",
     "n'nin mükemmel sayı olup olmadığını söyle (kendisi hariç bölenlerinin toplamına eşit).",
     '''
def perfect_number(n):
    if n < 2:
        return False
    total = 1
    d = 2
    while d * d <= n:
        if n % d == 0:
            total += d + (n // d if d != n // d else 0)
        d += 1
    return total == n
''', '''
assert perfect_number(6) and perfect_number(28)
assert not perfect_number(12)
''', "Divisors come in pairs (d, n/d), so checking up to √n is enough.",
     "Bölenler (d, n/d) çiftleri halinde gelir; bu yüzden √n'ye kadar bakmak yeter.")

task("digital_root", "Repeatedly sum the digits of n until a single digit remains.",
     "Tek basamak kalana kadar n'nin basamaklarını tekrar tekrar topla.",
     '''
def digital_root(n):
    while n >= 10:
        n = sum(int(d) for d in str(n))
    return n
''', '''
assert digital_root(9875) == 2
''', "The loop keeps summing digits while the number has more than one.",
     "Sayı birden fazla basamaklı olduğu sürece basamaklar toplanmaya devam eder.")

task("count_bits", "Count the 1 bits in the binary form of a non-negative integer.",
     "Negatif olmayan bir tam sayının ikili gösterimindeki 1 bitlerini say.",
     '''
def count_bits(n):
    return bin(n).count("1")
''', '''
assert count_bits(0) == 0 and count_bits(255) == 8 and count_bits(10) == 2
''', "bin() gives the binary string; the ones are counted.", "bin() ikili gösterimi verir; içindeki 1'ler sayılır.")

task("power_of_two", "Tell whether a positive integer is a power of two.", "Pozitif bir tam sayının ikinin kuvveti olup olmadığını söyle.",
     '''
def power_of_two(n):
    return n > 0 and n & (n - 1) == 0
''', '''
assert power_of_two(1) and power_of_two(64)
assert not power_of_two(0) and not power_of_two(12)
''', "A power of two has one bit set, so n & (n-1) clears it to zero.",
     "İkinin kuvvetlerinde tek bir bit 1'dir; n & (n-1) bu biti sıfırlar.")

task("hamming_distance", "Count the positions where two equal-length strings differ.",
     "Eşit uzunluktaki iki metnin kaç konumda farklı olduğunu say.",
     '''
def hamming_distance(a, b):
    if len(a) != len(b):
        raise ValueError("strings must have the same length")
    return sum(x != y for x, y in zip(a, b))
''', '''
assert hamming_distance("karolin", "kathrin") == 3
''', "zip pairs the characters; each unequal pair counts one.", "zip karakterleri eşler; her farklı çift bir sayılır.")

task("pascal_row", "Return row n of Pascal's triangle (row 0 is [1]).", "Pascal üçgeninin n'inci satırını döndür (0. satır [1]).",
     '''
def pascal_row(n):
    row = [1]
    for _ in range(n):
        row = [a + b for a, b in zip([0] + row, row + [0])]
    return row
''', '''
assert pascal_row(0) == [1] and pascal_row(4) == [1, 4, 6, 4, 1]
''', "Each row is the pairwise sum of the previous row shifted left and right.",
     "Her satır, önceki satırın sola ve sağa kaydırılmış hallerinin toplamıdır.")

task("sha256_hex", "Return the SHA-256 hex digest of a text (UTF-8).", "Bir metnin (UTF-8) SHA-256 özetini onaltılık olarak döndür.",
     '''
import hashlib


def sha256_hex(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
''', '''
assert sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
''', "The text is encoded to bytes and hashed with hashlib.", "Metin baytlara çevrilip hashlib ile özetlenir.")

task("invert_dict", "Invert a dict so values become keys (values are unique).", "Bir sözlüğü ters çevir; değerler anahtar olsun (değerler benzersiz).",
     '''
def invert_dict(data):
    return {v: k for k, v in data.items()}
''', '''
assert invert_dict({"bir": 1, "iki": 2}) == {1: "bir", 2: "iki"}
''', "A dict comprehension swaps each key and value.", "Sözlük üreteci her anahtar ile değerin yerini değiştirir.")

task("group_by", "Group a list of dicts by the value of a key.", "Bir sözlük listesini bir anahtarın değerine göre grupla.",
     '''
from collections import defaultdict


def group_by(rows, key):
    groups = defaultdict(list)
    for row in rows:
        groups[row[key]].append(row)
    return dict(groups)
''', '''
rows = [{"sehir": "İzmir", "ad": "Ece"}, {"sehir": "Bursa", "ad": "Can"}, {"sehir": "İzmir", "ad": "Ali"}]
assert [r["ad"] for r in group_by(rows, "sehir")["İzmir"]] == ["Ece", "Ali"]
''', "defaultdict(list) creates each group on first use.", "defaultdict(list) her grubu ilk kullanımda oluşturur.")

task("deep_get", "Safely read a nested value with a dotted path, returning a default if any key is missing.",
     "Noktalı bir yol ile iç içe bir değeri güvenle oku; anahtar yoksa varsayılanı döndür.",
     '''
def deep_get(data, path, default=None):
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return data
''', '''
config = {"db": {"host": "localhost", "port": 5432}}
assert deep_get(config, "db.port") == 5432
assert deep_get(config, "db.user", "root") == "root"
''', "Each path part descends one level; a missing key returns the default instead of raising.",
     "Yolun her parçası bir seviye iner; eksik anahtar hata yerine varsayılanı döndürür.",
     bug='''
def deep_get(data, path, default=None):
    for key in path.split("."):
        data = data[key]
    return data
''', cause_en="A missing key raises KeyError; check `key in data` (and that data is a dict) and return the default.",
     cause_tr="Eksik anahtar KeyError verir; `key in data` (ve data'nın sözlük olduğunu) kontrol edip varsayılanı döndür.")

task("moving_average", "Return the moving averages of a list over a window of size k.",
     "Bir listenin k uzunluğundaki pencerelerle hareketli ortalamasını döndür.",
     '''
def moving_average(values, k):
    if k <= 0 or k > len(values):
        return []
    window = sum(values[:k])
    out = [window / k]
    for i in range(k, len(values)):
        window += values[i] - values[i - k]
        out.append(window / k)
    return out
''', '''
assert moving_average([1, 2, 3, 4, 5], 2) == [1.5, 2.5, 3.5, 4.5]
''', "The window sum is updated by adding the new item and removing the old one.",
     "Pencere toplamı yeni eleman eklenip eskisi çıkarılarak güncellenir.")

task("clamp", "Clamp a number into the range [low, high].", "Bir sayıyı [alt, üst] aralığına sınırla.",
     '''
def clamp(x, low, high):
    if low > high:
        raise ValueError("low must not exceed high")
    return max(low, min(x, high))
''', '''
assert clamp(5, 0, 3) == 3 and clamp(-1, 0, 3) == 0 and clamp(2, 0, 3) == 2
''', "min caps the top, max lifts the bottom.", "min üst sınırı, max alt sınırı uygular.")

task("safe_divide", "Divide two numbers, returning None instead of failing on division by zero.",
     "İki sayıyı böl; sıfıra bölmede hata yerine None döndür.",
     '''
def safe_divide(a, b):
    try:
        return a / b
    except ZeroDivisionError:
        return None
''', '''
assert safe_divide(6, 3) == 2 and safe_divide(1, 0) is None
''', "ZeroDivisionError is caught and turned into None.", "ZeroDivisionError yakalanır ve None'a dönüştürülür.",
     bug='''
def safe_divide(a, b):
    return a / b if a else None
''', cause_en="It tests the numerator instead of the divisor: `safe_divide(1, 0)` still divides by zero; check `b` (or catch ZeroDivisionError).",
     cause_tr="Bölen yerine bölüneni kontrol ediyor: `safe_divide(1, 0)` yine sıfıra böler; `b`'yi kontrol et (ya da ZeroDivisionError yakala).")

task("most_common_char", "Return the most common character in a text, ignoring spaces (first one on ties).",
     "Bir metinde en çok geçen karakteri boşlukları saymadan döndür (eşitlikte ilk görülen).",
     '''
from collections import Counter


def most_common_char(text):
    counts = Counter(c for c in text if not c.isspace())
    return counts.most_common(1)[0][0] if counts else None
''', '''
assert most_common_char("ananas") == "a"
assert most_common_char("   ") is None
''', "Counter.most_common(1) returns the top character; ties keep first-seen order.",
     "Counter.most_common(1) en sık karakteri verir; eşitlikte ilk görülen öne geçer.")

task("find_duplicates", "Return the items that appear more than once in a list, in first-seen order.",
     "Bir listede birden fazla geçen elemanları ilk görülme sırasıyla döndür.",
     '''
from collections import Counter


def find_duplicates(items):
    counts = Counter(items)
    seen = set()
    out = []
    for x in items:
        if counts[x] > 1 and x not in seen:
            seen.add(x)
            out.append(x)
    return out
''', '''
assert find_duplicates([3, 1, 3, 2, 1, 3]) == [3, 1]
''', "Counter finds the counts; a second pass keeps first-seen order.",
     "Counter tekrar sayılarını bulur; ikinci geçiş ilk görülme sırasını korur.")

task("list_difference", "Return items of the first list that are not in the second, keeping order.",
     "Birinci listede olup ikincide olmayan elemanları sırayı koruyarak döndür.",
     '''
def list_difference(a, b):
    exclude = set(b)
    return [x for x in a if x not in exclude]
''', '''
assert list_difference([1, 2, 3, 2], [2]) == [1, 3]
''', "A set makes each membership test O(1).", "Küme, her üyelik kontrolünü O(1) yapar.")

task("find_peak", "Return the index of any element that is not smaller than its neighbours.",
     "Komşularından küçük olmayan herhangi bir elemanın indeksini döndür.",
     '''
def find_peak(values):
    lo, hi = 0, len(values) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] < values[mid + 1]:
            lo = mid + 1
        else:
            hi = mid
    return lo
''', '''
v = [1, 3, 20, 4, 1, 0]
i = find_peak(v)
assert v[i] == 20
''', "Binary search moves toward the rising side, where a peak must exist.",
     "İkili arama yükselen tarafa doğru ilerler; orada mutlaka bir tepe vardır.")

task("matrix_trace", "Return the sum of the main diagonal of a square matrix.", "Kare bir matrisin ana köşegen toplamını döndür.",
     '''
def matrix_trace(m):
    return sum(m[i][i] for i in range(len(m)))
''', '''
assert matrix_trace([[1, 2], [3, 4]]) == 5
''', "The diagonal elements are those with equal row and column index.",
     "Köşegen elemanları satır ve sütun indeksi eşit olanlardır.")

task("sentence_case", "Capitalise the first letter of every sentence in a text.", "Bir metindeki her cümlenin ilk harfini büyüt.",
     '''
import re


def sentence_case(text):
    return re.sub(r"(^|[.!?]\\s+)([a-zçğıöşü])", lambda m: m.group(1) + m.group(2).replace("i", "İ").upper(), text)
''', '''
assert sentence_case("merhaba. nasılsın? iyiyim!") == "Merhaba. Nasılsın? İyiyim!"
''', "A regex finds letters at the start or after sentence punctuation and upper-cases them.",
     "Düzenli ifade, başta ya da noktalama işaretinden sonra gelen harfi bulup büyütür.")

task("count_lines", "Count the non-empty lines in a text file.", "Bir metin dosyasındaki boş olmayan satırları say.",
     '''
from pathlib import Path


def count_lines(path):
    return sum(1 for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip())
''', '''
Path("a.txt").write_text("bir\\n\\niki\\n", encoding="utf-8")
assert count_lines("a.txt") == 2
''', "pathlib reads the file; blank lines are skipped.", "pathlib dosyayı okur; boş satırlar sayılmaz.")

task("Temperature", "Write a Temperature class that stores Celsius and exposes a fahrenheit property with a setter.",
     "Santigrat değerini saklayan ve ayarlanabilir fahrenheit özelliği olan bir Temperature sınıfı yaz.",
     '''
class Temperature:
    def __init__(self, celsius=0.0):
        self.celsius = celsius

    @property
    def fahrenheit(self):
        return self.celsius * 9 / 5 + 32

    @fahrenheit.setter
    def fahrenheit(self, value):
        self.celsius = (value - 32) * 5 / 9
''', '''
t = Temperature(100)
assert t.fahrenheit == 212
t.fahrenheit = 32
assert t.celsius == 0
''', "The property converts on read; the setter converts back and stores Celsius.",
     "Özellik okurken dönüştürür; ayarlayıcı tersine çevirip santigrat olarak saklar.")

task("Inventory", "Write an Inventory class to add stock, remove stock (not below zero) and list low-stock items.",
     "Stok ekleyen, stok düşen (sıfırın altına inmeyen) ve azalan ürünleri listeleyen bir Inventory sınıfı yaz.",
     '''
class Inventory:
    def __init__(self):
        self.items = {}

    def add(self, name, qty):
        self.items[name] = self.items.get(name, 0) + qty

    def remove(self, name, qty):
        if self.items.get(name, 0) < qty:
            raise ValueError(f"not enough {name}")
        self.items[name] -= qty

    def low_stock(self, limit=5):
        return sorted(n for n, q in self.items.items() if q < limit)
''', '''
inv = Inventory()
inv.add("çay", 10)
inv.add("şeker", 3)
inv.remove("çay", 7)
assert inv.low_stock() == ["çay", "şeker"]
''', "A dict holds quantities; removing more than available is refused.",
     "Miktarlar bir sözlükte tutulur; eldekinden fazlasını düşmek reddedilir.")

task("count_words_by_length", "Return a dict of word length -> number of words with that length.",
     "Kelime uzunluğu -> o uzunluktaki kelime sayısı sözlüğünü döndür.",
     '''
from collections import Counter


def count_words_by_length(text):
    return dict(Counter(len(w) for w in text.split()))
''', '''
assert count_words_by_length("bu bir test") == {2: 1, 3: 1, 4: 1}
''', "Counter counts the lengths of the split words.", "Counter, ayrılan kelimelerin uzunluklarını sayar.")

task("format_phone_tr", "Format a Turkish mobile number like '05321234567' as '0532 123 45 67'.",
     "'05321234567' gibi bir cep telefonu numarasını '0532 123 45 67' biçiminde yaz.",
     '''
def format_phone_tr(number):
    digits = "".join(c for c in number if c.isdigit())
    if len(digits) == 10:
        digits = "0" + digits
    if len(digits) != 11 or not digits.startswith("05"):
        raise ValueError("not a Turkish mobile number")
    return f"{digits[:4]} {digits[4:7]} {digits[7:9]} {digits[9:]}"
''', '''
assert format_phone_tr("05321234567") == "0532 123 45 67"
assert format_phone_tr("532 123 45 67") == "0532 123 45 67"
''', "Non-digits are dropped, a missing leading 0 is added, then the groups are joined with spaces.",
     "Rakam olmayanlar atılır, eksik baştaki 0 eklenir, sonra gruplar boşlukla birleştirilir.")

task("date_tr", "Format a date as Turkish text: date(2024, 4, 23) -> '23 Nisan 2024'.",
     "Bir tarihi Türkçe metin olarak yaz: date(2024, 4, 23) -> '23 Nisan 2024'.",
     '''
from datetime import date

AYLAR = ["Ocak", "Şubat", "Mart", "Nisan", "Mayıs", "Haziran", "Temmuz", "Ağustos", "Eylül", "Ekim", "Kasım", "Aralık"]


def date_tr(d):
    return f"{d.day} {AYLAR[d.month - 1]} {d.year}"
''', '''
assert date_tr(date(2024, 4, 23)) == "23 Nisan 2024"
''', "Month names come from a list indexed by month − 1 (no locale needed).",
     "Ay adları, ay − 1 indeksli bir listeden gelir (yerel ayar gerekmez).",
     bug='''
from datetime import date

AYLAR = ["Ocak", "Şubat", "Mart", "Nisan", "Mayıs", "Haziran", "Temmuz", "Ağustos", "Eylül", "Ekim", "Kasım", "Aralık"]


def date_tr(d):
    return f"{d.day} {AYLAR[d.month]} {d.year}"
''', cause_en="Months are 1–12 but list indexes are 0–11: `AYLAR[d.month]` is one month late and fails for December; use `d.month - 1`.",
     cause_tr="Aylar 1–12, liste indeksleri 0–11'dir: `AYLAR[d.month]` bir ay kayar ve Aralık'ta hata verir; `d.month - 1` kullan.")

task("running_total", "Return the running totals of a list of numbers.", "Bir sayı listesinin kümülatif (birikimli) toplamlarını döndür.",
     '''
from itertools import accumulate


def running_total(numbers):
    return list(accumulate(numbers))
''', '''
assert running_total([1, 2, 3, 4]) == [1, 3, 6, 10]
assert running_total([]) == []
''', "itertools.accumulate yields each partial sum.", "itertools.accumulate her ara toplamı sırayla verir.",
     bug='''
def running_total(numbers):
    total = 0
    out = []
    for n in numbers:
        out.append(total)
        total += n
    return out
''', cause_en="The total is appended before the current number is added, so every value lags one step; add first, then append.",
     cause_tr="Toplam, o anki sayı eklenmeden listeye konuyor; her değer bir adım geride kalıyor. Önce ekle, sonra listeye koy.")

task("zip_to_dict", "Build a dict from a list of keys and a list of values; refuse lists of different length.",
     "Bir anahtar listesi ve bir değer listesinden sözlük oluştur; uzunluklar farklıysa reddet.",
     '''
def zip_to_dict(keys, values):
    if len(keys) != len(values):
        raise ValueError("keys and values differ in length")
    return dict(zip(keys, values))
''', '''
assert zip_to_dict(["a", "b"], [1, 2]) == {"a": 1, "b": 2}
try:
    zip_to_dict(["a"], [1, 2])
    raise AssertionError("length mismatch accepted")
except ValueError:
    pass
''', "zip pairs keys with values; the length check stops zip from silently dropping items.",
     "zip anahtarları değerlerle eşler; uzunluk kontrolü zip'in fazlalıkları sessizce atmasını önler.",
     bug='''
def zip_to_dict(keys, values):
    return dict(zip(keys, values))
''', cause_en="zip stops at the shorter list and silently drops the extra values; check the lengths and raise ValueError.",
     cause_tr="zip kısa listede durur ve fazla değerleri sessizce atar; uzunlukları kontrol edip ValueError fırlat.")

task("chunk_string", "Split a string into pieces of n characters.", "Bir metni n karakterlik parçalara böl.",
     '''
def chunk_string(text, n):
    if n <= 0:
        raise ValueError("n must be positive")
    return [text[i:i + n] for i in range(0, len(text), n)]
''', '''
assert chunk_string("abcdefg", 3) == ["abc", "def", "g"]
assert chunk_string("", 2) == []
''', "Slices of length n are taken at every n-th position.", "Her n'inci konumdan başlayarak n uzunluğunda dilimler alınır.",
     bug='''
def chunk_string(text, n):
    return [text[i:i + n] for i in range(len(text) // n)]
''', cause_en="`range(len(text) // n)` steps by 1 and counts too few chunks; the start positions must be `range(0, len(text), n)`.",
     cause_tr="`range(len(text) // n)` birer birer ilerler ve parça sayısını eksik hesaplar; başlangıçlar `range(0, len(text), n)` olmalı.")
