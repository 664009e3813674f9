"""Every UI string of the public catalogue, in one bilingual table (``i18n.lookup(SITE, key, language)``).

One table rather than strings in templates: a missing translation is a KeyError in a test, not a
half-English page, and a museum reviewing the Vietnamese reads one file.
"""

from __future__ import annotations

from ..presentation.records import Text

SITE: dict[str, Text] = {
    "skip": Text("Chuyển đến nội dung chính", "Skip to main content"),
    "home": Text("Trang chủ", "Home"),
    "nav": Text("Duyệt bộ sưu tập", "Browse the collection"),
    "language": Text("English", "Tiếng Việt"),  # the link to the *other* language, in that language
    "language_hint": Text("Switch to English", "Chuyển sang tiếng Việt"),
    "search": Text("Tìm kiếm", "Search"),
    "search_label": Text("Tìm trong bộ sưu tập", "Search the collection"),
    "search_hint": Text("Ví dụ: trống đồng, gốm, Ponagar", "For example: bronze drum, trong dong, Ponagar"),
    "facet_type": Text("Loại hình", "Object type"),
    "facet_site": Text("Địa điểm", "Site"),
    "facet_period": Text("Thời kỳ", "Period"),
    "facet_rank": Text("Xếp hạng", "Heritage rank"),
    "browse_by": Text("Duyệt theo", "Browse by"),
    "records": Text("hồ sơ", "records"),
    "images": Text("ảnh", "images"),
    "published": Text("hiện vật, di tích và tư liệu được công bố", "objects, sites and documents published"),
    "highlights": Text("Trong bộ sưu tập", "In the collection"),
    "see_all": Text("Xem tất cả hồ sơ", "See every record"),
    "results": Text("kết quả", "results"),
    "results_for": Text("Kết quả cho", "Results for"),
    "no_results": Text(
        "Không tìm thấy hồ sơ nào. Hãy thử từ khác, bỏ bớt bộ lọc hoặc gõ không dấu.",
        "No records found. Try other words, fewer filters, or typing without diacritics.",
    ),
    "filters": Text("Lọc kết quả", "Narrow the results"),
    "remove_filter": Text("Bỏ lọc", "Remove filter"),
    "page": Text("Trang", "Page"),
    "of": Text("/", "of"),
    "pages": Text("Các trang kết quả", "Result pages"),
    "previous": Text("Trang trước", "Previous page"),
    "next": Text("Trang sau", "Next page"),
    "restricted": Text("Hạn chế truy cập", "Restricted access"),
    "restricted_note": Text(
        "Ảnh của hồ sơ này chỉ hiển thị ở bản xem trước thu nhỏ.",
        "This record's images are shown as reduced previews only.",
    ),
    "inventory_number": Text("Số hiệu", "Inventory number"),
    "description": Text("Mô tả", "Description"),
    "details": Text("Thông tin", "Details"),
    "rights": Text("Quyền sử dụng", "Rights"),
    "attribution": Text("Ghi công", "Attribution"),
    "viewer": Text("Xem chi tiết ảnh", "Zoomable viewer"),
    "viewer_title": Text("Trình xem ảnh", "Image viewer"),
    "image": Text("Ảnh", "Image"),
    "manifest": Text("Manifest IIIF (JSON)", "IIIF manifest (JSON)"),
    "drag_and_drop": Text(
        "Kéo biểu tượng IIIF vào một trình xem IIIF để mở hồ sơ này",
        "Drag the IIIF logo into a IIIF viewer to open this record",
    ),
    "embed": Text("Nhúng vào trang web của bạn", "Embed on your web site"),
    "embed_help": Text(
        "Sao chép đoạn mã này vào trang web (WordPress, Drupal…) để hiển thị trình xem ảnh.",
        "Copy this code into a web page (WordPress, Drupal…) to show the viewer there.",
    ),
    "embed_code": Text("Mã nhúng", "Embed code"),
    "copy": Text("Sao chép", "Copy"),
    "copied": Text("Đã sao chép", "Copied"),
    "not_found": Text("Không tìm thấy trang", "Page not found"),
    "not_found_text": Text(
        "Không có hồ sơ hoặc trang nào ở địa chỉ này. Hãy tìm trong bộ sưu tập.",
        "There is no record or page at this address. Try searching the collection.",
    ),
    "values": Text("giá trị", "values"),
}
