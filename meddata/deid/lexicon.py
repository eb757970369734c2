"""Word lists used by the recogniser: common given names and surnames, words that are also
names, and ordinary words that must never be taken for a name on their own.

The name lists are short, common US given names and surnames; the recogniser relies on context
(titles, signatures, field labels, credentials) for every other name.
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(w.lower() for w in text.split())


GIVEN_NAMES = _words(
    """
    aaron abigail adam adrian aidan alan albert alex alexander alexandra alexis alfred alice
    alicia alison allen alma amanda amy andre andrea andrew angela angelica anita ann anna anne
    annie anthony antonio arthur ashley audrey austin barbara barry beatrice ben benjamin bernard
    beth betty beverly bobby bonnie brad bradley brandon brenda brian brittany bruce bryan caleb
    calvin cameron carl carla carlos carmen carol caroline carolyn carrie catherine cathy charles
    charlene charlotte chad cheryl chris christina christine christopher cindy claire clara
    clarence claude clifford clyde colleen connie craig crystal curtis cynthia daisy dale dallas
    dan dana daniel danielle danny darlene darrell darryl dave david deanna debbie deborah debra
    denise dennis derek diana diane dolores don donald donna doris dorothy douglas duane dustin
    dwayne dylan earl eddie edgar edith edna edward edwin eileen elaine eleanor elena elijah
    elizabeth ellen elmer eloise emily emma eric erica erik erin ernest esther ethan ethel eugene
    eva evan evelyn felix fernando florence floyd frances francis francisco fred frederick
    gabriel gail gary geneva george gerald geraldine gertrude gilbert gladys glen glenda glenn
    gloria gordon greg gregory gwendolyn hannah harold harriet harry harvey hazel heather
    hector helen henry herbert herman hilda holly howard irene isaac isabel isabella jack jackie
    jacob jacqueline jaime james jamie jane janet janice jared jasmine jason javier jean jeanne
    jeff jeffrey jennifer jenny jeremy jerome jerry jesse jessica jesus jill jim jimmy joan
    joann joanne joe joel john johnny jon jonathan jorge jose joseph josephine joshua joyce
    juan juanita judith judy julia julian julie justin karen karl kate katherine kathleen
    kathryn kathy katie keith kelly ken kenneth kevin kim kimberly kirk kristen kristin kurt
    kyle lana larry laura lauren laurie lawrence leah lee leon leonard leroy leslie lester
    lewis lillian linda lindsay lisa lloyd logan lois lonnie lorraine louis louise lucas lucy
    luis luke lydia lynn mabel madison manuel marc marcus margaret maria marian marie marilyn
    mario marion marjorie marlene martha martin marvin mary matthew maureen maurice megan
    melanie melissa melvin michael michelle miguel mildred milton miriam mitchell monica
    nancy naomi natalie nathan nathaniel neil nicholas nicole nina noah norma norman olivia
    oscar pamela patricia patrick paul paula pauline pearl peggy penny peter philip phillip
    phyllis priscilla rachel ralph ramon randall randy raymond rebecca regina renee rhonda
    ricardo richard rick ricky rita robert roberta roberto robin rodney roger roland ronald
    ronnie rosa rosemary roy ruby russell ruth ryan sally samantha samuel sandra sara sarah
    scott sean sergio seth shannon sharon shawn sheila shelly sherry shirley sophia stacy
    stanley stella stephanie stephen steve steven sue susan suzanne sylvia tamara tammy tanya
    tara ted teresa terri terry theodore theresa thomas tiffany timothy tina todd tom tommy
    tony tracy travis troy tyler valerie vanessa vernon veronica vicki victor victoria vincent
    virginia walter wanda warren wayne wendy wesley william willie yolanda yvonne zachary
    """
)

SURNAMES = _words(
    """
    adams aguilar alexander allen alvarez anderson andrews armstrong arnold bailey barnes
    barrett bates beck bennett berry boyd bradley brooks bryant burke burns butler byrd
    caldwell campbell carlson carpenter carr carroll carter castillo castro chapman chavez
    chen clark clarke coleman collins contreras cooper cox crawford cruz cunningham curtis
    daniels davidson davis dawson delgado diaz dixon douglas duncan dunn edwards elliott
    ellis estrada evans ferguson fernandez fisher fleming fletcher flores fowler franklin
    freeman fuller garcia gardner garrett garza george gibson gilbert gomez gonzales gonzalez
    gordon graham graves greene gregory griffin gutierrez guzman hall hamilton hansen hanson
    harper harris harrison hawkins hayes henderson henry hernandez herrera hicks hoffman
    holland holmes howard hudson hughes hunt jackson jacobs james jenkins jensen jimenez
    johnson johnston jones jordan kelley kelly kennedy kim knight lambert larson lawrence
    lawson lee lewis lopez lucas lynch marshall martin martinez mason matthews mcdonald
    mendez mendoza meyer miller mitchell montgomery moore morales moreno morgan morris
    morrison munoz murphy murray myers nelson nguyen nichols nunez obrien oconnor olson
    ortiz owens palmer parker patel patterson payne pearson pena perez perkins perry peters
    peterson phillips pierce porter powell ramirez ramos ray reyes reynolds richards
    richardson riley rivera roberts robertson robinson rodriguez rogers romero ross ruiz
    russell ryan salazar sanchez sanders santos schmidt schneider schultz scott shaw simmons
    simpson smith snyder soto spencer stanley stephens stevens stewart sullivan sutton
    taylor thomas thompson torres tran tucker turner vargas vasquez wagner walker wallace
    walsh warren washington watkins watson weaver webb welch wheeler williams williamson
    willis wilson wong wright yang zhang
    """
)

# Words that are names and also ordinary English (or anatomy) words: only context makes them names.
AMBIGUOUS = _words(
    """
    mark hope faith joy grace will bill may june april summer dawn rose frank grant ray
    hunter chase sunny destiny precious amber brown white young long gray grey green black
    king little love golden friend bishop dean christian rich sharp strong wise stone hill
    wood woods park bell cook baker rice fox hunt lane mills price ward west reed cole hart
    wells ford page art don pat sue gene iris ivy lily violet sky miles banks marsh moody
    wolf swift bush major guy rusty drew sterling penny early hall field fields lamb brook
    bond cash case child church cross dale day english fair gross hale holiday jewel joy
    justice lemon light lord moss north south east noble paris pope power read rock ross
    sage short small snow spring stern storm street temple vance walker walls march august
    star sharon carter mason jordan washington virginia florence chelsea lincoln cliff
    """
)

# Ordinary words (lower case) never accepted as a name token, whatever their case.
NOT_NAMES = _words(
    """
    a an the and or of in on at to by for with from into onto via per as is was were be been
    being are has have had do does did not no none nor but if then than that this these those
    there here he she it they them their his her hers its him we us our you your me my who whom
    which what when where why how all any each every both either neither some such same other
    patient patients pt pts report reports result results finding findings impression history
    exam examination study studies image images series view views phone telephone fax pager
    email call called calling team er ed icu or pacu clinic hospital department service family
    nurse nursing staff radiology radiologist physician provider primary care pcp surgeon surgery
    oncology cardiology neurology medicine attending resident fellow technologist tech on-call
    covering referring ordering today yesterday tomorrow tonight now date time am pm daily
    review reviewed outside films comparison prior previous new old left right bilateral
    normal abnormal stable unchanged acute chronic mild moderate severe small large no yes
    within without noted seen see also please note per approx approximately about above below
    chest abdomen pelvis head neck brain spine lung lungs heart liver kidney kidneys bone
    ct mri mr us xr cxr pet nm dexa ecg ekg echo iv po im prn bid tid qid qd md do rn np pa
    daughter son wife husband mother father sister brother spouse partner niece nephew
    caregiver neighbor guardian contact emergency name names signed signature dictated
    electronically transcribed verified approved read author cc dear sincerely regards thanks
    thank discussed communicated notified paged consulted informed results critical finding
    findings telephone bedside person office chart record records note notes detail details
    message voicemail tel tele cell cellphone mobile home work beeper pgr ext follow up followup return visit appointment clinic admission discharge
    unit floor room bed service line plan assessment diagnosis dx hx hpi ros pmh psh fh sh
    meds medications allergies labs vitals social past medical surgical mr mrs ms miss dr
    doctor prof professor sir madam mx jr sr ii iii iv the-patient he/she s/p w/ w/o
    mrn mr# dob ssn acc accession id age sex male female gender race dob: ht wt bmi
    alone lives living home husband's wife's his her hospitalist intensivist consultant
    attending's covering team's phone's by-phone ordered ordering orders scheduled schedule
    """
)

TITLES = _words("dr dr. doctor mr mr. mrs mrs. ms ms. miss prof prof. professor mx mx. sister")

CREDENTIALS = (
    "MD",
    "M.D.",
    "DO",
    "D.O.",
    "PhD",
    "Ph.D.",
    "RN",
    "NP",
    "PA",
    "PA-C",
    "DNP",
    "MBBS",
    "FRCR",
    "FACR",
    "RT",
    "RPh",
    "PharmD",
    "CNM",
    "CRNA",
    "LPN",
    "MSW",
    "LCSW",
    "APRN",
    "FNP",
    "DPM",
    "DDS",
)

US_STATES = frozenset(
    """AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV
    NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR""".split()
)

US_STATE_NAMES = (
    "Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia|"
    "Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|"
    "Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|"
    "New Mexico|New York|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|"
    "Rhode Island|South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington|"
    "West Virginia|Wisconsin|Wyoming"
)

# Words of procedures, anatomy and image processing (DICOM descriptions such as "ABDOMEN^LIVER"
# or "MEDCOM RESAMPLED"): a caret value or a short line with one of them is not a person's name.
# Used by the weak name cues only (caret values, signature lines), never to stop a name after a
# title ("Dr. Hand" stays a name).
CLINICAL_WORDS = _words(
    """
    abdomen abdominal adrenal ankle aorta aortic appendix arm arterial artery axial axilla
    biliary bladder body bone bones bowel brain breast bronchial cardiac carotid cerebral
    cervical chest colon contrast coronal coronary cranial derived duodenum ear elbow
    esophagus extremity eye face facial femur fibula finger foot forearm gallbladder hand head
    heart hepatic hip humerus iliac kidney kidneys knee leg limb liver localizer lumbar lung lungs
    mandible mediastinum medcom mip mpr musculoskeletal nasal neck orbit orbits original
    pancreas pelvis pelvic pituitary portal primary prostate pulmonary radius rectum
    reformat reformatted renal resampled rib ribs routine sacrum sagittal scout secondary
    shoulder sinus sinuses skull spine spleen sternum stomach temporal testis thigh thoracic
    thorax thyroid tibia toe uterus venous vertebra wrist protocol series recon reconstruction
    lossy compressed subtraction perfusion diffusion angio angiography venogram phase
    triphasic multiphase biphasic enhanced noncontrast screening survey limited complete
    portable upright supine prone lateral frontal oblique wo
    """
)

# Countries, regions and continents (lower case): a place after "lives in" or "is from" that is
# one of them is not a geographic subdivision smaller than a state.
COUNTRIES = _words(
    """
    afghanistan africa albania algeria america argentina armenia asia australia austria
    bangladesh belgium bolivia bosnia brazil bulgaria burma cambodia cameroon canada
    caribbean chile china colombia congo croatia cuba cyprus czechia denmark ecuador egypt
    england ethiopia europe finland france germany ghana greece guatemala haiti honduras
    hungary iceland india indonesia iran iraq ireland israel italy jamaica japan jordan kenya
    korea kosovo laos lebanon liberia libya lithuania malaysia mexico morocco nepal
    netherlands nicaragua nigeria norway pakistan panama peru philippines poland portugal
    romania russia rwanda scotland senegal serbia sierra somalia spain sudan sweden
    switzerland syria taiwan tanzania thailand tunisia turkey uganda ukraine uruguay
    venezuela vietnam wales yemen zimbabwe usa us uk
    """
)
