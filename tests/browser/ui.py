"""What an annotator does in Label Studio's labeling view, as Selenium steps.

Reading the view goes through the DOM (header, image, buttons) and, for region geometry, through
``window.Htx``: the labeling store the Label Studio frontend exposes (its ``annotationStore``
holds the regions the canvas draws).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

LOAD_TIMEOUT_S = 60

# the frontend fetches the task's image and shows it from a blob: URL
IMAGE_CSS = "img[src^='blob:'], img[src*='/data/']"
_TASK_READY = """const IMAGE = "img[src^='blob:'], img[src*='/data/']";
const h = window.Htx;
if (!h || h.isLoading || !h.task || !h.annotationStore || !h.annotationStore.selected) return null;
const img = document.querySelector(IMAGE);
if (!img || !img.complete) return null;
return h.task.id;
"""

_REGIONS = """
const a = window.Htx.annotationStore.selected;
return a.regions.map(r => ({id: String(r.id).split('#')[0], label: r.labelName || (r.labeling && r.labeling.selectedLabels || []).map(l => l.value).join(','),
  x: r.x, y: r.y, width: r.width, height: r.height}));
"""


CLOSE_MODAL = "button[aria-label='Close modal']"


@dataclass
class TaskView:
    task_id: int
    data: dict
    instructions: str  # the text of the instructions dialog the stream opened with


def open_stream(driver, server, project_id: int) -> TaskView:
    """The project's labeling stream (Label All Tasks), first task loaded, instructions read and closed."""
    driver.get(f"{server.url}/projects/{project_id}/data?labeling=1")
    task_id = wait_task(driver, None)
    try:  # the project's instructions open with the stream (show_instruction)
        WebDriverWait(driver, 8, poll_frequency=0.2).until(lambda d: d.find_elements(By.CSS_SELECTOR, CLOSE_MODAL))
        text = driver.find_element(By.CSS_SELECTOR, ".lsf-modal-ls__content").text
    except Exception:  # noqa: BLE001 (no dialog: the test asserts on the empty text)
        text = ""
    close_instructions(driver)
    return TaskView(task_id, task_data(driver), text)


def open_task(driver, server, project_id: int, task_id: int) -> TaskView:
    """One task opened from the project's task list (the data manager's quick view)."""
    driver.get(f"{server.url}/projects/{project_id}/data?task={task_id}")
    wait_task(driver, None)
    close_instructions(driver)
    return TaskView(task_id, task_data(driver), "")


def click_submit(driver) -> None:
    for _ in range(3):
        try:
            driver.find_element(By.XPATH, "//button[normalize-space()='Submit']").click()
            return
        except (ElementClickInterceptedException, StaleElementReferenceException):
            close_instructions(driver)
            time.sleep(0.5)
    raise AssertionError("the Submit button cannot be clicked")


def close_instructions(driver) -> None:
    for _ in range(10):
        buttons = [b for b in driver.find_elements(By.CSS_SELECTOR, CLOSE_MODAL) if b.is_displayed()]
        if not buttons:
            return
        try:
            buttons[0].click()
        except (ElementClickInterceptedException, StaleElementReferenceException):
            pass
        time.sleep(0.3)


def wait_task(driver, previous: int | None) -> int:
    """Wait until a task other than ``previous`` is loaded with its image; its id."""
    def ready(d):
        task_id = d.execute_script(_TASK_READY)
        return task_id if task_id is not None and task_id != previous else False

    return WebDriverWait(driver, LOAD_TIMEOUT_S, poll_frequency=0.2).until(ready)


def task_data(driver) -> dict:
    return driver.execute_script("return JSON.parse(JSON.stringify(window.Htx.task.dataObj))")


def header_texts(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('h1,h2,h3,h4,h5,h6')).map(h => h.innerText.trim()).filter(t => t)"
    )


def image_natural_width(driver) -> int:
    return driver.execute_script("const i = document.querySelector(arguments[0]); return i ? i.naturalWidth : 0", IMAGE_CSS)


def regions(driver) -> list[dict]:
    return driver.execute_script(_REGIONS)


def region_list_texts(driver) -> list[str]:
    """The labels the Regions panel shows (what the annotator reads next to the image)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('[class*=outliner]')).map(p => p.innerText).filter(t => t.trim())"
    )


def choose(driver, verdict: str, *, by_key: bool = False) -> None:
    """Give the verdict: click its radio button, or press its hotkey (a / r / e)."""
    if by_key:  # hotkeys work when no text field has the focus
        driver.execute_script("document.activeElement && document.activeElement.blur()")
        ActionChains(driver).send_keys({"accept": "a", "reject": "r", "edit": "e"}[verdict]).perform()
    else:
        click(driver, driver.find_element(By.CSS_SELECTOR, f"input.ant-radio-input[name={verdict}]").find_element(By.XPATH, "./../.."))
    WebDriverWait(driver, 10).until(
        lambda d: d.find_element(By.CSS_SELECTOR, f"input.ant-radio-input[name={verdict}]").is_selected()
    )


def edit_text(driver, control: str, text: str) -> None:
    """Rewrite the pre-filled text of a TextArea control (its Edit button, select all, type, Enter)."""
    content = driver.find_element(By.CSS_SELECTOR, f"[name^='{control}:'][data-testid=htx-textbox-content]")
    region = content.find_element(By.XPATH, "./ancestor::*[@data-testid='htx-textbox-view'][1]")
    button = region.find_element(By.CSS_SELECTOR, "[data-testid=htx-textbox-edit-button]")
    click(driver, button)
    box = WebDriverWait(driver, 10).until(lambda d: region.find_element(By.CSS_SELECTOR, "textarea"))
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    WebDriverWait(driver, 10).until(lambda d: text in d.find_element(By.CSS_SELECTOR, f"[name^='{control}:']").text)


def click(driver, element) -> None:
    """Scroll to the element, hover it (some buttons show on hover) and click; a dialog in the way is closed."""
    for attempt in range(4):
        try:
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
            ActionChains(driver).move_to_element(element).pause(0.2).click().perform()
            return
        except ElementClickInterceptedException:
            if attempt == 3:
                raise
            close_instructions(driver)
            time.sleep(0.5)


def drag_region(driver, region_id: str, dx_percent: float, dy_percent: float) -> dict:
    """Drag a rectangle by a share of the image (select it with a click, then drag its middle)."""
    image = driver.find_element(By.CSS_SELECTOR, IMAGE_CSS)
    stage = image.find_element(By.XPATH, "./ancestor::*[.//canvas][1]").find_elements(By.TAG_NAME, "canvas")[-1]
    box = next(r for r in regions(driver) if r["id"] == region_id)
    rect = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];", image)
    width, height = rect
    # offsets from the image's centre (Selenium 4 measures move_to_element offsets from the centre)
    cx = (box["x"] + box["width"] / 2) / 100 * width - width / 2
    cy = (box["y"] + box["height"] / 2) / 100 * height - height / 2
    actions = ActionChains(driver)
    actions.move_to_element_with_offset(stage, int(cx), int(cy)).click().pause(0.3).perform()
    actions = ActionChains(driver)
    actions.move_to_element_with_offset(stage, int(cx), int(cy)).click_and_hold().pause(0.2)
    steps = 8
    for _ in range(steps):
        actions.move_by_offset(int(dx_percent / 100 * width / steps), int(dy_percent / 100 * height / steps)).pause(0.05)
    actions.release().perform()
    time.sleep(0.3)
    return next(r for r in regions(driver) if r["id"] == region_id)


def submit(driver) -> int | None:
    """Click Submit; the id of the next task the stream opens (None when the stream is done)."""
    before = driver.execute_script("return window.Htx.task.id")
    click_submit(driver)
    try:
        return wait_task(driver, before)
    except Exception:  # noqa: BLE001 (no next task: the stream shows its end page)
        return None
